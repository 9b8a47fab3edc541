// Gymnasium-Robotics' CoupledHalfCheetah: two HalfCheetah-v5 cheetahs side by side, tied
// by an elastic tendon, run forward; the reward is the mean of the two cheetahs'
// HalfCheetah rewards. No termination.
#include "env/task.h"

namespace hapo::env {

namespace {

constexpr double kForwardRewardWeight = 1.0;
constexpr double kCtrlCostWeight = 0.1;
constexpr double kResetNoiseScale = 0.1;
// The second cheetah's rootx: qpos[nq / 2] (of 18) in the reference.
constexpr int kSecondRootX = 9;

class CoupledHalfCheetah final : public Task {
 public:
  int frame_skip() const override { return 5; }
  bool needs_contact_forces() const override { return false; }
  // The reference's reward_ctrl1/2 are the costs themselves (positive), unlike the
  // negated reward_ctrl of Gymnasium's tasks.
  std::vector<std::string> info_names() const override {
    return {"x_position1", "x_position2", "x_velocity1", "x_velocity2",
            "reward_run", "reward_ctrl1", "reward_ctrl2"};
  }
  int memo_size() const override { return 2; }

  void reset_state(const mjModel* m, mjData* d, Rng& rng) const override {
    add_uniform_noise(d->qpos, m->nq, kResetNoiseScale, rng, d->qpos);
    add_normal_noise(d->qvel, m->nv, kResetNoiseScale, rng, d->qvel);
  }

  // Each cheetah's root x before the step.
  void remember(const mjData* d, double* memo) const override {
    memo[0] = d->qpos[0];
    memo[1] = d->qpos[kSecondRootX];
  }

  Outcome step(const mjModel* m, const mjData* d, const double* action, const double* memo,
               float* info) const override {
    const double dt = step_dt(m, *this);
    const double x_position1 = d->qpos[0], x_position2 = d->qpos[kSecondRootX];
    const double x_velocity1 = (x_position1 - memo[0]) / dt;
    const double x_velocity2 = (x_position2 - memo[1]) / dt;
    // forward reward: the mean of the cheetahs' velocities
    const double forward_reward = kForwardRewardWeight * (x_velocity1 + x_velocity2) / 2.0;
    // ctrl cost: each cheetah's on its half of the action
    const int half = m->nu / 2;
    const double ctrl_cost1 = control_cost(action, half, kCtrlCostWeight);
    const double ctrl_cost2 = control_cost(action + half, m->nu - half, kCtrlCostWeight);

    const double reward = forward_reward - (ctrl_cost1 + ctrl_cost2) / 2.0;
    const double components[] = {x_position1, x_position2, x_velocity1, x_velocity2,
                                 forward_reward, ctrl_cost1, ctrl_cost2};
    for (double c : components) *info++ = static_cast<float>(c);
    return {reward, false};
  }
};

}  // namespace

std::unique_ptr<Task> make_coupled_half_cheetah() {
  return std::make_unique<CoupledHalfCheetah>();
}

}  // namespace hapo::env
