// Swimmer-v5 (and the many-segment swimmers built on it): swim forward (+x) in a viscous
// fluid; never terminates.
#include <cmath>

#include "env/task.h"

namespace hapo::env {

namespace {

constexpr double kForwardRewardWeight = 1.0;
constexpr double kCtrlCostWeight = 1e-4;
constexpr double kResetNoiseScale = 0.1;

class Swimmer final : public Task {
 public:
  int frame_skip() const override { return 4; }
  bool needs_contact_forces() const override { return false; }
  std::vector<std::string> info_names() const override {
    return {"x_position", "y_position", "distance_from_origin", "x_velocity", "y_velocity",
            "reward_forward", "reward_ctrl"};
  }
  int memo_size() const override { return 2; }

  void reset_state(const mjModel* m, mjData* d, Rng& rng) const override {
    add_uniform_noise(d->qpos, m->nq, kResetNoiseScale, rng, d->qpos);
    add_uniform_noise(d->qvel, m->nv, kResetNoiseScale, rng, d->qvel);
  }

  // The sliders' positions (x, y) before the step.
  void remember(const mjData* d, double* memo) const override {
    memo[0] = d->qpos[0];
    memo[1] = d->qpos[1];
  }

  Outcome step(const mjModel* m, const mjData* d, const double* action, const double* memo,
               float* info) const override {
    const double dt = step_dt(m, *this);
    const double x = d->qpos[0], y = d->qpos[1];
    const double x_velocity = (x - memo[0]) / dt;
    const double y_velocity = (y - memo[1]) / dt;
    // forward reward
    const double forward_reward = kForwardRewardWeight * x_velocity;
    // ctrl cost
    const double ctrl_cost = control_cost(action, m->nu, kCtrlCostWeight);

    const double reward = forward_reward - ctrl_cost;
    const double components[] = {x, y, std::sqrt(x * x + y * y), x_velocity, y_velocity,
                                 forward_reward, -ctrl_cost};
    for (double c : components) *info++ = static_cast<float>(c);
    return {reward, false};
  }
};

}  // namespace

std::unique_ptr<Task> make_swimmer() { return std::make_unique<Swimmer>(); }

}  // namespace hapo::env
