// HalfCheetah-v5: run forward; no termination.
#include "env/task.h"

namespace hapo::env {

namespace {

constexpr double kForwardRewardWeight = 1.0;
constexpr double kCtrlCostWeight = 0.1;
constexpr double kResetNoiseScale = 0.1;

class HalfCheetah final : public Task {
 public:
  int frame_skip() const override { return 5; }
  bool needs_contact_forces() const override { return false; }
  std::vector<std::string> info_names() const override {
    return {"x_position", "x_velocity", "reward_forward", "reward_ctrl"};
  }
  int memo_size() const override { return 1; }

  void reset_state(const mjModel* m, mjData* d, Rng& rng) const override {
    add_uniform_noise(d->qpos, m->nq, kResetNoiseScale, rng, d->qpos);
    add_normal_noise(d->qvel, m->nv, kResetNoiseScale, rng, d->qvel);
  }

  void remember(const mjData* d, double* memo) const override { memo[0] = d->qpos[0]; }

  Outcome step(const mjModel* m, const mjData* d, const double* action, const double* memo,
               float* info) const override {
    const double x_position = d->qpos[0];
    const double x_velocity = (x_position - memo[0]) / step_dt(m, *this);
    // forward reward
    const double forward_reward = kForwardRewardWeight * x_velocity;
    // ctrl cost
    const double ctrl_cost = control_cost(action, m->nu, kCtrlCostWeight);

    const double reward = forward_reward - ctrl_cost;
    const double components[] = {x_position, x_velocity, forward_reward, -ctrl_cost};
    for (double c : components) *info++ = static_cast<float>(c);
    return {reward, false};
  }
};

}  // namespace

std::unique_ptr<Task> make_half_cheetah() { return std::make_unique<HalfCheetah>(); }

}  // namespace hapo::env
