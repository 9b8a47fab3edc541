#pragma once

// Hopper-v5 and Walker2d-v5 share everything but the health rule: frame skip 4,
// U(-5e-3, 5e-3) reset noise on qpos and qvel, and
//   reward = forward_reward_weight * x_velocity + healthy_reward - ctrl_cost_weight * |a|^2.
#include "env/task.h"

namespace hapo::env {

class PlanarWalker : public Task {
 public:
  static constexpr double kForwardRewardWeight = 1.0;
  static constexpr double kCtrlCostWeight = 1e-3;
  static constexpr double kHealthyReward = 1.0;
  static constexpr double kResetNoiseScale = 5e-3;

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

 protected:
  virtual bool is_healthy(const mjModel* m, const mjData* d) const = 0;
};

}  // namespace hapo::env
