#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <mujoco/mujoco.h>

#include "env/mujoco_globals.h"
#include "env/observation.h"
#include "env/rng.h"
#include "env/task.h"
#include "env/thread_pool.h"

namespace hapo::env {

// Threads beyond the machine's cores only add switching, and results never depend on the
// count; the bound catches a count that was meant for something else.
inline constexpr int kMaxThreads = 1024;

// What a batch is made of; validated by the BatchedEnv constructor.
struct EnvSpec {
  std::string model_path;  // MJCF file (Gymnasium's asset)
  // MJCF text loaded instead of model_path when not empty (models generated for a size,
  // such as the many-segment swimmer); model_path then only names it in errors.
  std::string model_xml;
  std::string task;        // a name of task_names()
  int num_envs = 1;
  int num_threads = 1;  // in [1, kMaxThreads]
  std::uint64_t seed = 0;
  int max_episode_steps = 1000;
  // agent_actuators[i][j]: the actuator driven by local action j of agent i; together a
  // permutation of the model's actuators.
  std::vector<std::vector<int>> agent_actuators;
  std::vector<std::vector<ObsElement>> agent_obs;  // per agent observation layout
  std::vector<ObsElement> state;                   // global state layout
};

// Everything that determines future steps, plus the current outputs.
struct Snapshot {
  std::string model;                    // identity() of the env it was taken from; may be empty
  std::vector<mjtNum> physics;          // [N, nstate], mj_getState(mjSTATE_INTEGRATION)
  std::vector<double> memo;             // [N, memo_size]
  std::vector<std::int64_t> elapsed;    // [N] steps in the current episode
  std::vector<std::uint64_t> rng;       // [N, 4]
  std::vector<std::vector<float>> obs;  // per agent [N, obs_size]
  std::vector<float> state;             // [N, state_size]
};

// N copies of one task stepped on a thread pool. Outputs live in buffers this object
// owns and overwrites on every call (their addresses never change):
//   actions (per agent) -> [workers: local -> global action, frame_skip x mj_step,
//   reward/termination, observation gathers, auto-reset] -> obs, state, reward, flags.
// Not thread-safe: a second call while one runs throws std::runtime_error.
class BatchedEnv {
 public:
  explicit BatchedEnv(EnvSpec spec);
  ~BatchedEnv();
  BatchedEnv(const BatchedEnv&) = delete;
  BatchedEnv& operator=(const BatchedEnv&) = delete;

  // Starts a new episode in every env; a seed re-seeds every env's RNG first.
  void reset(std::optional<std::uint64_t> seed);
  // One step of every env. actions[i] points at agent i's [N, action_size(i)] row-major
  // float array, finite (unchecked). Ended episodes are reset; their last outputs are in
  // the final_* buffers.
  void step(const std::vector<const float*>& actions);
  // A step that throws (a reward beyond float32, a MuJoCo error) leaves the batch partly
  // stepped: the next step() throws until reset().
  // Frees the physics and the threads; later calls throw std::runtime_error. Idempotent.
  void close();
  bool closed() const { return closed_; }

  // Physics of env k: qpos and qvel, and Gymnasium's set_state (write, mj_forward,
  // recompute env k's outputs; qpos and qvel must be finite).
  std::vector<mjtNum> qpos(int k) const;
  std::vector<mjtNum> qvel(int k) const;
  void set_state(int k, const std::vector<mjtNum>& qpos, const std::vector<mjtNum>& qvel);

  // restore() throws std::invalid_argument naming both envs for a snapshot of another
  // identity(), and for one of other sizes; a snapshot without a model name is checked by
  // its sizes only.
  Snapshot snapshot() const;
  void restore(const Snapshot& snapshot);

  // The task, its model and the sizes a snapshot depends on, e.g.
  // "HalfCheetah (half_cheetah.xml: nq 9, nv 9, nu 6; actions 3+3, observations 8+8, state 17)".
  std::string identity() const;

  // The warnings MuJoCo raised in reset(), step() and set_state() since the last call, oldest
  // first, each prefixed with its env ("env 3: Nan, Inf or huge value in QACC at DOF 0. The
  // simulation is unstable. ...", after which MuJoCo has reset that env's physics to the
  // model's defaults, as it does under Gymnasium). They are not printed or written to
  // MUJOCO_LOG.TXT; at most kMaxWarnings are kept between calls, then a count of the rest.
  std::vector<std::string> take_warnings();
  static constexpr std::size_t kMaxWarnings = 1000;

  int num_envs() const { return spec_.num_envs; }
  int num_threads() const { return spec_.num_threads; }
  int num_agents() const { return static_cast<int>(spec_.agent_actuators.size()); }
  int action_size(int agent) const { return static_cast<int>(spec_.agent_actuators[agent].size()); }
  int obs_size(int agent) const { return static_cast<int>(spec_.agent_obs[agent].size()); }
  int state_size() const { return static_cast<int>(spec_.state.size()); }
  int nq() const { return model_->nq; }
  int nv() const { return model_->nv; }
  int nstate() const { return nstate_; }
  int memo_size() const { return task_->memo_size(); }
  int max_episode_steps() const { return spec_.max_episode_steps; }
  int frame_skip() const { return task_->frame_skip(); }
  double dt() const { return step_dt(model_, *task_); }
  const std::vector<std::string>& info_names() const { return info_names_; }
  // actuator_ctrlrange of the actuator behind local action j of agent i.
  std::array<double, 2> ctrl_range(int agent, int j) const;

  float* obs(int agent) { return obs_[agent].data(); }
  float* final_obs(int agent) { return final_obs_[agent].data(); }
  float* state() { return state_.data(); }
  float* final_state() { return final_state_.data(); }
  float* reward() { return reward_.data(); }
  std::uint8_t* terminated() { return terminated_.data(); }
  std::uint8_t* truncated() { return truncated_.data(); }
  float* info() { return info_.data(); }  // [N, info_names().size()]

 private:
  class CallGuard;
  void reset_env(int k);
  void step_env(int k, const std::vector<const float*>& actions);
  void observe(int k, std::vector<std::vector<float>>& obs, std::vector<float>& state);
  void check_env_index(int k) const;
  void check_memory() const;
  void check_outputs(int k, double reward) const;
  void release();
  // Moves the warnings `capture` collected while env k was worked on to warnings_.
  void record_warnings(int k, WarningCapture& capture);

  EnvSpec spec_;
  std::unique_ptr<Task> task_;
  std::vector<std::string> info_names_;
  mjModel* model_ = nullptr;
  std::vector<mjData*> data_;
  std::vector<Rng> rngs_;
  std::vector<double> memo_;
  std::vector<std::int64_t> elapsed_;
  std::vector<double> actions_;  // [N, nu] global actions, as the task sees them
  std::unique_ptr<ThreadPool> pool_;
  int nstate_ = 0;
  bool needs_reset_ = true;
  bool closed_ = false;
  mutable std::atomic<bool> busy_{false};
  std::mutex warnings_mutex_;  // the workers record concurrently
  std::vector<std::string> warnings_;
  std::size_t dropped_warnings_ = 0;

  std::vector<std::vector<float>> obs_, final_obs_;
  std::vector<float> state_, final_state_, reward_, info_;
  std::vector<std::uint8_t> terminated_, truncated_;
};

}  // namespace hapo::env
