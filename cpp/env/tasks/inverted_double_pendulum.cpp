// InvertedDoublePendulum-v5: balance two poles stacked on a cart; terminates when the
// tip falls to height 1.
#include "env/task.h"

namespace hapo::env {

namespace {

constexpr double kHealthyReward = 10.0;
constexpr double kResetNoiseScale = 0.1;
constexpr double kMinTipHeight = 1.0;
constexpr double kTipTargetHeight = 2.0;
constexpr double kTipXWeight = 0.01;
constexpr double kFirstPoleVelocityWeight = 1e-3, kSecondPoleVelocityWeight = 5e-3;
constexpr int kTipSite = 0;

class InvertedDoublePendulum final : public Task {
 public:
  int frame_skip() const override { return 5; }
  bool needs_contact_forces() const override { return false; }
  std::vector<std::string> info_names() const override {
    return {"reward_survive", "distance_penalty", "velocity_penalty"};
  }
  int memo_size() const override { return 0; }

  void reset_state(const mjModel* m, mjData* d, Rng& rng) const override {
    add_uniform_noise(d->qpos, m->nq, kResetNoiseScale, rng, d->qpos);
    add_normal_noise(d->qvel, m->nv, kResetNoiseScale, rng, d->qvel);
  }

  void remember(const mjData*, double*) const override {}

  // Gymnasium reads the tip's position after the step, as the last substep's kinematics
  // left it.
  Outcome step(const mjModel*, const mjData* d, const double*, const double*,
               float* info) const override {
    const double x = d->site_xpos[3 * kTipSite], y = d->site_xpos[3 * kTipSite + 2];
    const double v1 = d->qvel[1], v2 = d->qvel[2];
    const bool terminated = y <= kMinTipHeight;
    // distance penalty: the tip away from upright above the cart
    const double dist_penalty =
        kTipXWeight * x * x + (y - kTipTargetHeight) * (y - kTipTargetHeight);
    // velocity penalty: the poles' angular velocities
    const double vel_penalty =
        kFirstPoleVelocityWeight * v1 * v1 + kSecondPoleVelocityWeight * v2 * v2;
    // alive bonus
    const double alive_bonus = terminated ? 0.0 : kHealthyReward;

    const double reward = alive_bonus - dist_penalty - vel_penalty;
    const double components[] = {alive_bonus, -dist_penalty, -vel_penalty};
    for (double c : components) *info++ = static_cast<float>(c);
    return {reward, terminated};
  }
};

}  // namespace

std::unique_ptr<Task> make_inverted_double_pendulum() {
  return std::make_unique<InvertedDoublePendulum>();
}

}  // namespace hapo::env
