#pragma once

#include <memory>
#include <string>
#include <vector>

#include <mujoco/mujoco.h>

#include "env/rng.h"

namespace hapo::env {

struct Outcome {
  double reward;
  bool terminated;
};

// One Gymnasium v5 MuJoCo task: reset noise, reward terms, info components and
// termination. The observation is not here: it is a data table (observation.h).
// Implementations are stateless; per-environment values live in the stepper.
class Task {
 public:
  virtual ~Task() = default;

  // mj_step calls per environment step.
  virtual int frame_skip() const = 0;
  // Whether the reward or observation reads cfrc_ext: then mj_rnePostConstraint runs
  // after the substeps, as in Gymnasium's MujocoEnv (not after reset: there Gymnasium
  // observes the zeros mj_resetData left).
  virtual bool needs_contact_forces() const = 0;
  // Names of the info components written by step(), in the reference's order.
  virtual std::vector<std::string> info_names() const = 0;
  // Number of values remember() writes.
  virtual int memo_size() const = 0;

  // Writes d->qpos and d->qvel of a new episode (after mj_resetData; the stepper runs
  // mj_forward afterwards).
  virtual void reset_state(const mjModel* m, mjData* d, Rng& rng) const = 0;
  // Records what the next step's reward compares against (the position before the step).
  // Kept by the stepper, not read back from mjData, so that a restored snapshot steps
  // exactly like the original.
  virtual void remember(const mjData* d, double* memo) const = 0;
  // After the substeps of a step with the given (unclipped) action: reward, termination,
  // and info components written to info[0 .. info_names().size()).
  virtual Outcome step(const mjModel* m, const mjData* d, const double* action,
                       const double* memo, float* info) const = 0;
};

// Gymnasium's control cost: weight * sum(action^2), on the action as given.
double control_cost(const double* action, int nu, double weight);

// sum(x[i]^2) over n entries.
double sum_of_squares(const mjtNum* x, int n);

// Euclidean distance between two bodies' positions (xpos).
double body_distance(const mjData* d, int body, int other);

// out[i] = base[i] + U(-scale, scale), drawn in index order.
void add_uniform_noise(const mjtNum* base, int n, double scale, Rng& rng, mjtNum* out);
// out[i] = base[i] + scale * N(0, 1), drawn in index order.
void add_normal_noise(const mjtNum* base, int n, double scale, Rng& rng, mjtNum* out);

// Seconds per environment step.
inline double step_dt(const mjModel* m, const Task& task) {
  return m->opt.timestep * task.frame_skip();
}

std::unique_ptr<Task> make_half_cheetah();
std::unique_ptr<Task> make_ant();
std::unique_ptr<Task> make_hopper();
std::unique_ptr<Task> make_walker2d();
std::unique_ptr<Task> make_humanoid();
std::unique_ptr<Task> make_humanoid_standup();
std::unique_ptr<Task> make_swimmer();
std::unique_ptr<Task> make_reacher();
std::unique_ptr<Task> make_pusher();
std::unique_ptr<Task> make_inverted_pendulum();
std::unique_ptr<Task> make_inverted_double_pendulum();
std::unique_ptr<Task> make_coupled_half_cheetah();

// The registered task names, and the task of a name (std::invalid_argument listing
// the valid names if unknown).
std::vector<std::string> task_names();
std::unique_ptr<Task> make_task(const std::string& name);

}  // namespace hapo::env
