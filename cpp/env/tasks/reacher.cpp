// Reacher-v5: bring the fingertip of a two-link arm to a random target; never terminates
// (the 50-step time limit ends episodes).
#include <cmath>

#include "env/task.h"

namespace hapo::env {

namespace {

constexpr double kDistWeight = 1.0;
constexpr double kCtrlWeight = 1.0;
constexpr double kJointNoiseScale = 0.1;
constexpr double kVelocityNoiseScale = 5e-3;
constexpr double kGoalRadius = 0.2;
constexpr int kFingertipBody = 3, kTargetBody = 4;

class Reacher final : public Task {
 public:
  int frame_skip() const override { return 2; }
  bool needs_contact_forces() const override { return false; }
  std::vector<std::string> info_names() const override { return {"reward_dist", "reward_ctrl"}; }
  int memo_size() const override { return 0; }

  // qpos: U(-0.1, 0.1) around the initial pose, then the target's (x, y) (the last two
  // entries) drawn uniformly in the disc of radius 0.2 by rejection from the square;
  // qvel: U(-5e-3, 5e-3) on the arm, zero on the target.
  void reset_state(const mjModel* m, mjData* d, Rng& rng) const override {
    add_uniform_noise(d->qpos, m->nq, kJointNoiseScale, rng, d->qpos);
    double gx = 0.0, gy = 0.0;
    do {
      gx = rng.uniform(-kGoalRadius, kGoalRadius);
      gy = rng.uniform(-kGoalRadius, kGoalRadius);
    } while (!(std::sqrt(gx * gx + gy * gy) < kGoalRadius));
    d->qpos[m->nq - 2] = gx;
    d->qpos[m->nq - 1] = gy;
    add_uniform_noise(d->qvel, m->nv, kVelocityNoiseScale, rng, d->qvel);
    d->qvel[m->nv - 2] = 0.0;
    d->qvel[m->nv - 1] = 0.0;
  }

  void remember(const mjData*, double*) const override {}

  // Gymnasium reads the body positions after the step, as the last substep's kinematics
  // left them.
  Outcome step(const mjModel* m, const mjData* d, const double* action, const double*,
               float* info) const override {
    // distance reward
    const double reward_dist = -body_distance(d, kFingertipBody, kTargetBody) * kDistWeight;
    // ctrl reward
    const double reward_ctrl = -control_cost(action, m->nu, kCtrlWeight);

    *info++ = static_cast<float>(reward_dist);
    *info++ = static_cast<float>(reward_ctrl);
    return {reward_dist + reward_ctrl, false};
  }
};

}  // namespace

std::unique_ptr<Task> make_reacher() { return std::make_unique<Reacher>(); }

}  // namespace hapo::env
