// Hopper-v5: hop forward; terminates when unhealthy (fallen, tilted, or state blown up).
#include <cmath>
#include <limits>

#include "env/task.h"

namespace hapo::env {

namespace {

constexpr double kForwardRewardWeight = 1.0;
constexpr double kCtrlCostWeight = 1e-3;
constexpr double kHealthyReward = 1.0;
constexpr double kHealthyStateLow = -100.0, kHealthyStateHigh = 100.0;
constexpr double kHealthyZLow = 0.7, kHealthyZHigh = std::numeric_limits<double>::infinity();
constexpr double kHealthyAngleLow = -0.2, kHealthyAngleHigh = 0.2;
constexpr double kResetNoiseScale = 5e-3;

class Hopper final : public Task {
 public:
  int frame_skip() const override { return 4; }
  bool needs_contact_forces() const override { return false; }
  std::vector<std::string> info_names() const override {
    return {"x_position", "z_distance_from_origin", "x_velocity",
            "reward_forward", "reward_ctrl", "reward_survive"};
  }
  int memo_size() const override { return 1; }

  void reset_state(const mjModel* m, mjData* d, Rng& rng) const override {
    add_uniform_noise(d->qpos, m->nq, kResetNoiseScale, rng, d->qpos);
    add_uniform_noise(d->qvel, m->nv, kResetNoiseScale, rng, d->qvel);
  }

  void remember(const mjData* d, double* memo) const override { memo[0] = d->qpos[0]; }

  Outcome step(const mjModel* m, const mjData* d, const double* action, const double* memo,
               float* info) const override {
    const double x_position = d->qpos[0];
    const double x_velocity = (x_position - memo[0]) / step_dt(m, *this);
    const bool healthy = is_healthy(m, d);
    // forward reward + healthy reward
    const double forward_reward = kForwardRewardWeight * x_velocity;
    const double healthy_reward = healthy ? kHealthyReward : 0.0;
    // ctrl cost
    const double ctrl_cost = control_cost(action, m->nu, kCtrlCostWeight);

    const double reward = (forward_reward + healthy_reward) - ctrl_cost;
    const double components[] = {x_position, d->qpos[1] - m->qpos0[1], x_velocity,
                                 forward_reward, -ctrl_cost, healthy_reward};
    for (double c : components) *info++ = static_cast<float>(c);
    return {reward, !healthy};
  }

 private:
  // Every entry of (qpos[2:], qvel) strictly inside the state range, the torso height
  // and angle strictly inside theirs.
  static bool is_healthy(const mjModel* m, const mjData* d) {
    auto inside = [](double x, double low, double high) { return low < x && x < high; };
    for (int i = 2; i < m->nq; ++i) {
      if (!inside(d->qpos[i], kHealthyStateLow, kHealthyStateHigh)) return false;
    }
    for (int i = 0; i < m->nv; ++i) {
      if (!inside(d->qvel[i], kHealthyStateLow, kHealthyStateHigh)) return false;
    }
    return inside(d->qpos[1], kHealthyZLow, kHealthyZHigh) &&
           inside(d->qpos[2], kHealthyAngleLow, kHealthyAngleHigh);
  }
};

}  // namespace

std::unique_ptr<Task> make_hopper() { return std::make_unique<Hopper>(); }

}  // namespace hapo::env
