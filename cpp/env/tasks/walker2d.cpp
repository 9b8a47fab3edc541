// Walker2d-v5: walk forward; terminates when the torso falls or tilts too far.
#include "env/task.h"

namespace hapo::env {

namespace {

constexpr double kForwardRewardWeight = 1.0;
constexpr double kCtrlCostWeight = 1e-3;
constexpr double kHealthyReward = 1.0;
constexpr double kHealthyZLow = 0.8, kHealthyZHigh = 2.0;
constexpr double kHealthyAngleLow = -1.0, kHealthyAngleHigh = 1.0;
constexpr double kResetNoiseScale = 5e-3;

class Walker2d final : public Task {
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
    const double z = d->qpos[1], angle = d->qpos[2];
    const bool healthy = kHealthyZLow < z && z < kHealthyZHigh &&
                         kHealthyAngleLow < angle && angle < kHealthyAngleHigh;
    // forward reward + healthy reward
    const double forward_reward = kForwardRewardWeight * x_velocity;
    const double healthy_reward = healthy ? kHealthyReward : 0.0;
    // ctrl cost
    const double ctrl_cost = control_cost(action, m->nu, kCtrlCostWeight);

    const double reward = (forward_reward + healthy_reward) - ctrl_cost;
    const double components[] = {x_position, z - m->qpos0[1], x_velocity,
                                 forward_reward, -ctrl_cost, healthy_reward};
    for (double c : components) *info++ = static_cast<float>(c);
    return {reward, !healthy};
  }
};

}  // namespace

std::unique_ptr<Task> make_walker2d() { return std::make_unique<Walker2d>(); }

}  // namespace hapo::env
