// Ant-v5: walk forward (+x) on four legs; terminates when the torso leaves its height range
// or the state stops being finite.
#include <cmath>

#include "env/numeric.h"
#include "env/task.h"

namespace hapo::env {

namespace {

constexpr double kForwardRewardWeight = 1.0;
constexpr double kCtrlCostWeight = 0.5;
constexpr double kContactCostWeight = 5e-4;
constexpr double kHealthyReward = 1.0;
constexpr int kMainBody = 1;  // torso
constexpr double kHealthyZLow = 0.2, kHealthyZHigh = 1.0;
constexpr double kContactForceLow = -1.0, kContactForceHigh = 1.0;
constexpr double kResetNoiseScale = 0.1;

class Ant final : public Task {
 public:
  int frame_skip() const override { return 5; }
  bool needs_contact_forces() const override { return true; }
  std::vector<std::string> info_names() const override {
    return {"x_position", "y_position", "distance_from_origin", "x_velocity", "y_velocity",
            "reward_forward", "reward_ctrl", "reward_contact", "reward_survive"};
  }
  int memo_size() const override { return 2; }

  void reset_state(const mjModel* m, mjData* d, Rng& rng) const override {
    add_uniform_noise(d->qpos, m->nq, kResetNoiseScale, rng, d->qpos);
    add_normal_noise(d->qvel, m->nv, kResetNoiseScale, rng, d->qvel);
  }

  // The torso's xpos as last computed by the kinematics (Gymnasium reads it before the step).
  void remember(const mjData* d, double* memo) const override {
    memo[0] = d->xpos[3 * kMainBody];
    memo[1] = d->xpos[3 * kMainBody + 1];
  }

  Outcome step(const mjModel* m, const mjData* d, const double* action, const double* memo,
               float* info) const override {
    const double dt = step_dt(m, *this);
    const double x_velocity = (d->xpos[3 * kMainBody] - memo[0]) / dt;
    const double y_velocity = (d->xpos[3 * kMainBody + 1] - memo[1]) / dt;
    const bool healthy = is_healthy(m, d);
    // forward reward + healthy reward
    const double forward_reward = x_velocity * kForwardRewardWeight;
    const double healthy_reward = healthy ? kHealthyReward : 0.0;
    // ctrl cost + contact cost (external contact forces of every body, clipped)
    const double ctrl_cost = control_cost(action, m->nu, kCtrlCostWeight);
    double contact_sum = 0.0;
    for (int i = 0; i < 6 * m->nbody; ++i) {
      const double f = clip(d->cfrc_ext[i], kContactForceLow, kContactForceHigh);
      contact_sum += f * f;
    }
    const double contact_cost = kContactCostWeight * contact_sum;

    const double reward = (forward_reward + healthy_reward) - (ctrl_cost + contact_cost);
    const double x = d->qpos[0], y = d->qpos[1];
    const double components[] = {x, y, std::sqrt(x * x + y * y), x_velocity, y_velocity,
                                 forward_reward, -ctrl_cost, -contact_cost, healthy_reward};
    for (double c : components) *info++ = static_cast<float>(c);
    return {reward, !healthy};
  }

 private:
  static bool is_healthy(const mjModel* m, const mjData* d) {
    for (int i = 0; i < m->nq; ++i) {
      if (!std::isfinite(d->qpos[i])) return false;
    }
    for (int i = 0; i < m->nv; ++i) {
      if (!std::isfinite(d->qvel[i])) return false;
    }
    return kHealthyZLow <= d->qpos[2] && d->qpos[2] <= kHealthyZHigh;
  }
};

}  // namespace

std::unique_ptr<Task> make_ant() { return std::make_unique<Ant>(); }

}  // namespace hapo::env
