// HumanoidStandup-v5: rise from lying down; never terminates.
#include <algorithm>

#include "env/task.h"

namespace hapo::env {

namespace {

constexpr double kUphillWeight = 1.0;
constexpr double kCtrlCostWeight = 0.1;
constexpr double kImpactCostWeight = 5e-7;
constexpr double kImpactCostHigh = 10.0;
constexpr double kAliveBonus = 1.0;
constexpr double kResetNoiseScale = 1e-2;

class HumanoidStandup final : public Task {
 public:
  int frame_skip() const override { return 5; }
  bool needs_contact_forces() const override { return true; }
  std::vector<std::string> info_names() const override {
    return {"x_position", "y_position", "z_distance_from_origin", "reward_linup",
            "reward_quadctrl", "reward_impact"};
  }
  int memo_size() const override { return 0; }

  void reset_state(const mjModel* m, mjData* d, Rng& rng) const override {
    add_uniform_noise(d->qpos, m->nq, kResetNoiseScale, rng, d->qpos);
    add_uniform_noise(d->qvel, m->nv, kResetNoiseScale, rng, d->qvel);
  }

  void remember(const mjData*, double*) const override {}

  Outcome step(const mjModel* m, const mjData* d, const double* action, const double*,
               float* info) const override {
    // uphill reward: the torso's height over the physics timestep (not the env step), as
    // Gymnasium has it
    const double uphill = kUphillWeight * d->qpos[2] / m->opt.timestep;
    // ctrl cost + impact cost (external forces of every body, squared, capped)
    const double ctrl_cost = control_cost(action, m->nu, kCtrlCostWeight);
    const double impact_cost = std::min(
        kImpactCostWeight * sum_of_squares(d->cfrc_ext, 6 * m->nbody), kImpactCostHigh);

    const double reward = uphill - ctrl_cost - impact_cost + kAliveBonus;
    const double components[] = {d->qpos[0], d->qpos[1], d->qpos[2] - m->qpos0[2], uphill,
                                 -ctrl_cost, -impact_cost};
    for (double c : components) *info++ = static_cast<float>(c);
    return {reward, false};
  }
};

}  // namespace

std::unique_ptr<Task> make_humanoid_standup() { return std::make_unique<HumanoidStandup>(); }

}  // namespace hapo::env
