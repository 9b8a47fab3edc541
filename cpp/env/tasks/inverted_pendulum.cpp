// InvertedPendulum-v5: balance a pole on a cart; terminates when the pole tilts past
// 0.2 rad or the state is not finite.
#include <cmath>

#include "env/task.h"

namespace hapo::env {

namespace {

constexpr double kResetNoiseScale = 0.01;
constexpr double kMaxPoleAngle = 0.2;

class InvertedPendulum final : public Task {
 public:
  int frame_skip() const override { return 2; }
  bool needs_contact_forces() const override { return false; }
  std::vector<std::string> info_names() const override { return {"reward_survive"}; }
  int memo_size() const override { return 0; }

  void reset_state(const mjModel* m, mjData* d, Rng& rng) const override {
    add_uniform_noise(d->qpos, m->nq, kResetNoiseScale, rng, d->qpos);
    add_uniform_noise(d->qvel, m->nv, kResetNoiseScale, rng, d->qvel);
  }

  void remember(const mjData*, double*) const override {}

  Outcome step(const mjModel* m, const mjData* d, const double*, const double*,
               float* info) const override {
    bool finite = true;
    for (int i = 0; i < m->nq; ++i) finite = finite && std::isfinite(d->qpos[i]);
    for (int i = 0; i < m->nv; ++i) finite = finite && std::isfinite(d->qvel[i]);
    const bool terminated = !finite || std::abs(d->qpos[1]) > kMaxPoleAngle;
    // survive reward
    const double reward = terminated ? 0.0 : 1.0;

    *info = static_cast<float>(reward);
    return {reward, terminated};
  }
};

}  // namespace

std::unique_ptr<Task> make_inverted_pendulum() { return std::make_unique<InvertedPendulum>(); }

}  // namespace hapo::env
