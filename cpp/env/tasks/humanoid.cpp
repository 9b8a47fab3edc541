// Humanoid-v5: walk forward (+x) with the centre of mass; terminates when the torso's
// height leaves (1, 2).
#include <algorithm>
#include <cmath>

#include "env/task.h"

namespace hapo::env {

namespace {

constexpr double kForwardRewardWeight = 1.25;
constexpr double kCtrlCostWeight = 0.1;
constexpr double kContactCostWeight = 5e-7;
constexpr double kContactCostHigh = 10.0;
constexpr double kHealthyReward = 5.0;
constexpr double kHealthyZLow = 1.0, kHealthyZHigh = 2.0;
constexpr double kResetNoiseScale = 1e-2;

class Humanoid final : public Task {
 public:
  int frame_skip() const override { return 5; }
  bool needs_contact_forces() const override { return true; }
  std::vector<std::string> info_names() const override {
    return {"x_position", "y_position", "distance_from_origin", "x_velocity", "y_velocity",
            "reward_survive", "reward_forward", "reward_ctrl", "reward_contact"};
  }
  int memo_size() const override { return 2; }

  void reset_state(const mjModel* m, mjData* d, Rng& rng) const override {
    add_uniform_noise(d->qpos, m->nq, kResetNoiseScale, rng, d->qpos);
    add_uniform_noise(d->qvel, m->nv, kResetNoiseScale, rng, d->qvel);
  }

  // The centre of mass: subtree_com of the world body is Gymnasium's mass_center
  // (sum of body_mass * xipos over the total mass), computed by the kinematics.
  void remember(const mjData* d, double* memo) const override {
    memo[0] = d->subtree_com[0];
    memo[1] = d->subtree_com[1];
  }

  Outcome step(const mjModel* m, const mjData* d, const double* action, const double* memo,
               float* info) const override {
    const double dt = step_dt(m, *this);
    const double x_velocity = (d->subtree_com[0] - memo[0]) / dt;
    const double y_velocity = (d->subtree_com[1] - memo[1]) / dt;
    const bool healthy = kHealthyZLow < d->qpos[2] && d->qpos[2] < kHealthyZHigh;
    // forward reward + healthy reward
    const double forward_reward = kForwardRewardWeight * x_velocity;
    const double healthy_reward = healthy ? kHealthyReward : 0.0;
    // ctrl cost + contact cost (external forces of every body, squared, capped)
    const double ctrl_cost = control_cost(action, m->nu, kCtrlCostWeight);
    const double contact_cost = std::min(
        kContactCostWeight * sum_of_squares(d->cfrc_ext, 6 * m->nbody), kContactCostHigh);

    const double reward = (forward_reward + healthy_reward) - (ctrl_cost + contact_cost);
    const double x = d->qpos[0], y = d->qpos[1];
    const double components[] = {x, y, std::sqrt(x * x + y * y), x_velocity, y_velocity,
                                 healthy_reward, forward_reward, -ctrl_cost, -contact_cost};
    for (double c : components) *info++ = static_cast<float>(c);
    return {reward, !healthy};
  }
};

}  // namespace

std::unique_ptr<Task> make_humanoid() { return std::make_unique<Humanoid>(); }

}  // namespace hapo::env
