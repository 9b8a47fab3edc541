// Pusher-v5: a seven-joint arm pushes a cylinder (the object) to a fixed goal; never
// terminates (the 100-step time limit ends episodes).
#include <cmath>

#include "env/task.h"

namespace hapo::env {

namespace {

constexpr double kNearWeight = 0.5;
constexpr double kDistWeight = 1.0;
constexpr double kCtrlWeight = 0.1;
constexpr double kVelocityNoiseScale = 5e-3;
// The object starts in [-0.3, 0] x [-0.2, 0.2], at least this far from the goal (the origin).
constexpr double kObjectXLow = -0.3, kObjectXHigh = 0.0, kObjectYHalfWidth = 0.2;
constexpr double kObjectMinGoalDistance = 0.17;
constexpr int kTipsArmBody = 10, kObjectBody = 11, kGoalBody = 12;
// The object's and the goal's sliders: the last four of qpos and qvel.
constexpr int kFreeEntries = 4;

class Pusher final : public Task {
 public:
  int frame_skip() const override { return 5; }
  bool needs_contact_forces() const override { return false; }
  std::vector<std::string> info_names() const override {
    return {"reward_dist", "reward_ctrl", "reward_near"};
  }
  int memo_size() const override { return 0; }

  // The arm starts at rest in the model's pose with U(-5e-3, 5e-3) joint velocities; the
  // object by rejection in its rectangle, the goal at the origin, both at rest.
  void reset_state(const mjModel* m, mjData* d, Rng& rng) const override {
    double x = 0.0, y = 0.0;
    do {
      x = rng.uniform(kObjectXLow, kObjectXHigh);
      y = rng.uniform(-kObjectYHalfWidth, kObjectYHalfWidth);
    } while (!(std::sqrt(x * x + y * y) > kObjectMinGoalDistance));
    mjtNum* free = d->qpos + m->nq - kFreeEntries;
    free[0] = x;
    free[1] = y;
    free[2] = 0.0;
    free[3] = 0.0;
    add_uniform_noise(d->qvel, m->nv, kVelocityNoiseScale, rng, d->qvel);
    for (int i = m->nv - kFreeEntries; i < m->nv; ++i) d->qvel[i] = 0.0;
  }

  void remember(const mjData*, double*) const override {}

  // Gymnasium reads the body positions after the step, as the last substep's kinematics
  // left them.
  Outcome step(const mjModel* m, const mjData* d, const double* action, const double*,
               float* info) const override {
    // near reward: the arm's tip to the object
    const double reward_near = -body_distance(d, kObjectBody, kTipsArmBody) * kNearWeight;
    // distance reward: the object to the goal
    const double reward_dist = -body_distance(d, kObjectBody, kGoalBody) * kDistWeight;
    // ctrl reward
    const double reward_ctrl = -control_cost(action, m->nu, kCtrlWeight);

    const double reward = reward_dist + reward_ctrl + reward_near;
    const double components[] = {reward_dist, reward_ctrl, reward_near};
    for (double c : components) *info++ = static_cast<float>(c);
    return {reward, false};
  }
};

}  // namespace

std::unique_ptr<Task> make_pusher() { return std::make_unique<Pusher>(); }

}  // namespace hapo::env
