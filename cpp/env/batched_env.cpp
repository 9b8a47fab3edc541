#include "env/batched_env.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <stdexcept>
#include <utility>

#include <unistd.h>

#include "env/mujoco_globals.h"

namespace hapo::env {

namespace {

constexpr int kStateSig = mjSTATE_INTEGRATION;

void require(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument(message);
}

mjModel* load_model(const EnvSpec& spec) {
  char error[1024] = "";
  mjModel* model = nullptr;
  if (spec.model_xml.empty()) {
    model = mj_loadXML(spec.model_path.c_str(), nullptr, error, sizeof(error));
  } else {
    constexpr const char* kName = "model.xml";
    mjVFS vfs;
    mj_defaultVFS(&vfs);
    if (mj_addBufferVFS(&vfs, kName, spec.model_xml.data(),
                        static_cast<int>(spec.model_xml.size())) == 0) {
      model = mj_loadXML(kName, &vfs, error, sizeof(error));
    }
    mj_deleteVFS(&vfs);
  }
  if (!model) {
    throw std::invalid_argument("cannot load MuJoCo model '" + spec.model_path + "': " + error);
  }
  return model;
}

// MuJoCo reads the clock through mjcb_time around every stage of mj_step when that
// callback is set, and the `mujoco` Python package sets one when imported: in a Python
// process it costs 7-15% of a step, to fill mjData.timer, which nothing here reads. Our
// calls pause it; a callback someone sets meanwhile stays.
struct TimerOff {
  using Value = mjfTime;
  static mjfTime install() {
    const mjfTime replaced = mjcb_time;
    mjcb_time = nullptr;
    return replaced;
  }
  static void restore(mjfTime saved) {
    if (mjcb_time == nullptr) mjcb_time = saved;
  }
};
using TimerPause = ScopedGlobal<TimerOff>;

// What every call into MuJoCo from the calling thread needs.
struct MujocoCall {
  ErrorsAsExceptions errors;
  TimerPause timer;
};

std::string format_number(double value) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.3g", value);
  return text;
}

std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int unit = 0;
  for (; bytes >= 1024.0 && unit < 6; ++unit) bytes /= 1024.0;
  return format_number(bytes) + " " + units[unit];
}

std::string join_sizes(int count, const std::function<int(int)>& size) {
  std::string out;
  for (int i = 0; i < count; ++i) out += (i ? "+" : "") + std::to_string(size(i));
  return out;
}

std::string file_name(const std::string& path) { return path.substr(path.find_last_of('/') + 1); }

}  // namespace

// Marks the env busy for one call; a concurrent call (from another Python thread, the
// GIL being released) throws instead of racing on the buffers.
class BatchedEnv::CallGuard {
 public:
  explicit CallGuard(const BatchedEnv& env) : env_(env) {
    if (env_.busy_.exchange(true)) {
      throw std::runtime_error("the env is already running a call from another thread; "
                               "step each env from one thread at a time");
    }
    if (env_.closed_) {
      env_.busy_ = false;
      throw std::runtime_error("the env is closed");
    }
  }
  ~CallGuard() { env_.busy_ = false; }
  CallGuard(const CallGuard&) = delete;
  CallGuard& operator=(const CallGuard&) = delete;

 private:
  const BatchedEnv& env_;
};

BatchedEnv::BatchedEnv(EnvSpec spec) : spec_(std::move(spec)) {
  require(spec_.num_envs >= 1, "num_envs must be >= 1, got " + std::to_string(spec_.num_envs));
  require(spec_.num_threads >= 1 && spec_.num_threads <= kMaxThreads,
          "num_threads must be in [1, " + std::to_string(kMaxThreads) + "], got " +
              std::to_string(spec_.num_threads) +
              ": threads beyond the machine's cores only add switching (results never depend "
              "on the count)");
  require(spec_.max_episode_steps >= 1,
          "max_episode_steps must be >= 1, got " + std::to_string(spec_.max_episode_steps));
  task_ = make_task(spec_.task);
  info_names_ = task_->info_names();

  model_ = load_model(spec_);
  // A constructor that throws runs no destructor: free what was made here.
  try {
    const int num_agents = static_cast<int>(spec_.agent_actuators.size());
    require(num_agents >= 1, "at least one agent is needed");
    require(static_cast<int>(spec_.agent_obs.size()) == num_agents,
            "agent_obs must have one layout per agent (" + std::to_string(num_agents) +
                "), got " + std::to_string(spec_.agent_obs.size()));
    std::vector<int> seen(model_->nu, 0);
    for (int i = 0; i < num_agents; ++i) {
      for (int a : spec_.agent_actuators[i]) {
        require(a >= 0 && a < model_->nu, "agent " + std::to_string(i) + " drives actuator " +
                                              std::to_string(a) + ", the model has " +
                                              std::to_string(model_->nu));
        require(!seen[a]++, "actuator " + std::to_string(a) + " is driven by two agents");
      }
      validate_layout(model_, spec_.agent_obs[i], ("agent " + std::to_string(i) + " obs").c_str());
    }
    for (int a = 0; a < model_->nu; ++a) {
      require(seen[a], "actuator " + std::to_string(a) + " is driven by no agent");
    }
    validate_layout(model_, spec_.state, "state");
    check_memory();

    const int n = spec_.num_envs;
    nstate_ = mj_stateSize(model_, kStateSig);
    ErrorsAsExceptions errors;
    data_.reserve(n);
    rngs_.reserve(n);
    for (int k = 0; k < n; ++k) {
      try {
        data_.push_back(mj_makeData(model_));
      } catch (const OutOfMemory& error) {
        throw OutOfMemory(std::string(error.what()) + " for the physics of env " +
                          std::to_string(k) + " of num_envs = " + std::to_string(n));
      }
      if (!data_.back()) throw std::runtime_error("mj_makeData failed for env " + std::to_string(k));
      rngs_.emplace_back(spec_.seed, k);
    }
    memo_.assign(static_cast<std::size_t>(n) * task_->memo_size(), 0.0);
    elapsed_.assign(n, 0);
    actions_.assign(static_cast<std::size_t>(n) * model_->nu, 0.0);
    for (int i = 0; i < num_agents; ++i) {
      obs_.emplace_back(static_cast<std::size_t>(n) * obs_size(i), 0.0f);
      final_obs_.emplace_back(static_cast<std::size_t>(n) * obs_size(i), 0.0f);
    }
    state_.assign(static_cast<std::size_t>(n) * state_size(), 0.0f);
    final_state_ = state_;
    reward_.assign(n, 0.0f);
    info_.assign(static_cast<std::size_t>(n) * info_names_.size(), 0.0f);
    terminated_.assign(n, 0);
    truncated_.assign(n, 0);
    pool_ = std::make_unique<ThreadPool>(spec_.num_threads);
  } catch (...) {
    release();
    throw;
  }
}

// Refuses a batch that cannot fit in this machine's memory before allocating any of it.
// The estimate is a lower bound: mjData's buffer and the outputs are written whole, while
// its arena (narena, megabytes) is reserved but touched only as far as the physics needs.
void BatchedEnv::check_memory() const {
  const long pages = sysconf(_SC_PHYS_PAGES), page_size = sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page_size <= 0) return;
  const double physical = static_cast<double>(pages) * static_cast<double>(page_size);
  std::size_t floats = 1 + info_names_.size();  // reward, info
  for (const auto& layout : spec_.agent_obs) floats += 2 * layout.size();  // obs, final_obs
  floats += 2 * spec_.state.size();                                       // state, final_state
  const double per_env = static_cast<double>(
      sizeof(mjData) + model_->nbuffer + sizeof(float) * floats + 2 +  // flags
      sizeof(double) * (task_->memo_size() + model_->nu) + sizeof(std::int64_t) + sizeof(Rng) +
      sizeof(mjData*));
  const double needed = per_env * spec_.num_envs;
  if (needed > physical) {
    throw OutOfMemory(
        "num_envs = " + std::to_string(spec_.num_envs) + " needs at least " +
        format_bytes(needed) + " of memory (" + format_bytes(per_env) +
        " per env: the model's mjData and the env's buffers), more than this machine's " +
        format_bytes(physical));
  }
}

std::string BatchedEnv::identity() const {
  return spec_.task + " (" + file_name(spec_.model_path) + ": nq " + std::to_string(model_->nq) +
         ", nv " + std::to_string(model_->nv) + ", nu " + std::to_string(model_->nu) +
         "; actions " + join_sizes(num_agents(), [this](int i) { return action_size(i); }) +
         ", observations " + join_sizes(num_agents(), [this](int i) { return obs_size(i); }) +
         ", state " + std::to_string(state_size()) + ")";
}

BatchedEnv::~BatchedEnv() { release(); }

void BatchedEnv::close() {
  if (closed_) return;
  CallGuard guard(*this);
  release();
}

void BatchedEnv::release() {
  pool_.reset();
  for (mjData* d : data_) mj_deleteData(d);
  data_.clear();
  if (model_) mj_deleteModel(model_);
  model_ = nullptr;
  closed_ = true;
}

std::array<double, 2> BatchedEnv::ctrl_range(int agent, int j) const {
  const int a = spec_.agent_actuators.at(agent).at(j);
  return {model_->actuator_ctrlrange[2 * a], model_->actuator_ctrlrange[2 * a + 1]};
}

void BatchedEnv::observe(int k, std::vector<std::vector<float>>& obs, std::vector<float>& state) {
  const mjData* d = data_[k];
  for (int i = 0; i < num_agents(); ++i) {
    gather(d, spec_.agent_obs[i], obs[i].data() + static_cast<std::size_t>(k) * obs_size(i));
  }
  gather(d, spec_.state, state.data() + static_cast<std::size_t>(k) * state_size());
}

// Gymnasium's reset: mj_resetData, noisy qpos/qvel, mj_forward.
void BatchedEnv::reset_env(int k) {
  mjData* d = data_[k];
  mj_resetData(model_, d);
  task_->reset_state(model_, d, rngs_[k]);
  mj_forward(model_, d);
  elapsed_[k] = 0;
  task_->remember(d, memo_.data() + static_cast<std::size_t>(k) * task_->memo_size());
  observe(k, obs_, state_);
}

void BatchedEnv::step_env(int k, const std::vector<const float*>& actions) {
  mjData* d = data_[k];
  const int nu = model_->nu;
  double* action = actions_.data() + static_cast<std::size_t>(k) * nu;
  for (int i = 0; i < num_agents(); ++i) {
    const int size = action_size(i);
    const float* local = actions[i] + static_cast<std::size_t>(k) * size;
    for (int j = 0; j < size; ++j) action[spec_.agent_actuators[i][j]] = local[j];
  }
  // MuJoCo clamps ctrl to ctrlrange inside mj_step; the control cost sees the raw action.
  std::copy(action, action + nu, d->ctrl);
  for (int s = 0; s < task_->frame_skip(); ++s) mj_step(model_, d);
  if (task_->needs_contact_forces()) mj_rnePostConstraint(model_, d);

  double* memo = memo_.data() + static_cast<std::size_t>(k) * task_->memo_size();
  float* info = info_.data() + static_cast<std::size_t>(k) * info_names_.size();
  const Outcome outcome = task_->step(model_, d, action, memo, info);
  reward_[k] = static_cast<float>(outcome.reward);
  check_outputs(k, outcome.reward);
  const bool truncated = ++elapsed_[k] >= spec_.max_episode_steps;
  terminated_[k] = outcome.terminated;
  truncated_[k] = truncated;

  observe(k, final_obs_, final_state_);
  if (outcome.terminated || truncated) {
    reset_env(k);
    return;
  }
  task_->remember(d, memo);
  for (int i = 0; i < num_agents(); ++i) {
    const std::size_t size = obs_size(i), at = static_cast<std::size_t>(k) * size;
    std::copy_n(final_obs_[i].data() + at, size, obs_[i].data() + at);
  }
  const std::size_t at = static_cast<std::size_t>(k) * state_size();
  std::copy_n(final_state_.data() + at, state_size(), state_.data() + at);
}

// Rewards and info are float32 for the learner: a value the double computation gives that
// float32 cannot hold would arrive as an infinity (a control cost of actions of 1e20 is
// 1e39), and one infinity turns every advantage of the batch into NaN.
void BatchedEnv::check_outputs(int k, double reward) const {
  const float* info = info_.data() + static_cast<std::size_t>(k) * info_names_.size();
  std::string what;
  if (!std::isfinite(reward_[k])) {
    what = "reward of " + format_number(reward);
  } else {
    for (std::size_t j = 0; j < info_names_.size() && what.empty(); ++j) {
      if (!std::isfinite(info[j])) what = "info '" + info_names_[j] + "'";
    }
  }
  if (what.empty()) return;
  const double* action = actions_.data() + static_cast<std::size_t>(k) * model_->nu;
  double largest = 0.0;
  for (int a = 0; a < model_->nu; ++a) largest = std::max(largest, std::fabs(action[a]));
  throw std::range_error(
      "the step gave env " + std::to_string(k) + " a " + what +
      ", beyond float32's range (|x| <= " + format_number(std::numeric_limits<float>::max()) +
      "); its largest |action| was " + format_number(largest) +
      " (the control cost grows with the square of the action): clamp actions to "
      "[action_low, action_high] (env.clip_actions) or find why the policy diverged");
}

void BatchedEnv::reset(std::optional<std::uint64_t> seed) {
  CallGuard guard(*this);
  if (seed) {
    spec_.seed = *seed;
    for (int k = 0; k < num_envs(); ++k) rngs_[k] = Rng(*seed, k);
  }
  MujocoCall call;
  needs_reset_ = true;
  pool_->run(num_envs(), [this](std::int64_t begin, std::int64_t end) {
    ErrorsAsExceptions errors;
    WarningCapture capture;
    for (std::int64_t k = begin; k < end; ++k) {
      reset_env(static_cast<int>(k));
      record_warnings(static_cast<int>(k), capture);
    }
  });
  std::fill(terminated_.begin(), terminated_.end(), 0);
  std::fill(truncated_.begin(), truncated_.end(), 0);
  needs_reset_ = false;
}

void BatchedEnv::step(const std::vector<const float*>& actions) {
  CallGuard guard(*this);
  if (needs_reset_) {
    throw std::runtime_error("call reset() before the first step(), and after a call that raised");
  }
  if (static_cast<int>(actions.size()) != num_agents()) {
    throw std::invalid_argument("expected actions for " + std::to_string(num_agents()) +
                                " agents, got " + std::to_string(actions.size()));
  }
  MujocoCall call;
  needs_reset_ = true;  // until every env has stepped
  pool_->run(num_envs(), [this, &actions](std::int64_t begin, std::int64_t end) {
    ErrorsAsExceptions errors;
    WarningCapture capture;
    for (std::int64_t k = begin; k < end; ++k) {
      step_env(static_cast<int>(k), actions);
      record_warnings(static_cast<int>(k), capture);
    }
  });
  needs_reset_ = false;
}

void BatchedEnv::record_warnings(int k, WarningCapture& capture) {
  if (capture.messages().empty()) return;
  std::vector<std::string> messages = capture.take();
  std::lock_guard<std::mutex> lock(warnings_mutex_);
  for (std::string& message : messages) {
    if (warnings_.size() < kMaxWarnings) {
      warnings_.push_back("env " + std::to_string(k) + ": " + std::move(message));
    } else {
      ++dropped_warnings_;
    }
  }
}

std::vector<std::string> BatchedEnv::take_warnings() {
  std::lock_guard<std::mutex> lock(warnings_mutex_);
  std::vector<std::string> taken = std::exchange(warnings_, {});
  if (dropped_warnings_ > 0) {
    taken.push_back("and " + std::to_string(dropped_warnings_) + " more warnings");
    dropped_warnings_ = 0;
  }
  return taken;
}

void BatchedEnv::check_env_index(int k) const {
  if (k < 0 || k >= num_envs()) {
    throw std::out_of_range("env index must be in [0, " + std::to_string(num_envs()) +
                            "), got " + std::to_string(k));
  }
}

std::vector<mjtNum> BatchedEnv::qpos(int k) const {
  CallGuard guard(*this);
  check_env_index(k);
  return {data_[k]->qpos, data_[k]->qpos + model_->nq};
}

std::vector<mjtNum> BatchedEnv::qvel(int k) const {
  CallGuard guard(*this);
  check_env_index(k);
  return {data_[k]->qvel, data_[k]->qvel + model_->nv};
}

void BatchedEnv::set_state(int k, const std::vector<mjtNum>& qpos,
                           const std::vector<mjtNum>& qvel) {
  CallGuard guard(*this);
  check_env_index(k);
  require(static_cast<int>(qpos.size()) == model_->nq,
          "qpos must have " + std::to_string(model_->nq) + " entries, got " +
              std::to_string(qpos.size()));
  require(static_cast<int>(qvel.size()) == model_->nv,
          "qvel must have " + std::to_string(model_->nv) + " entries, got " +
              std::to_string(qvel.size()));
  auto check_finite = [](const std::vector<mjtNum>& values, const char* name) {
    for (std::size_t i = 0; i < values.size(); ++i) {
      require(std::isfinite(values[i]), std::string(name) + " must be finite, got " +
                                            format_number(values[i]) + " at index " +
                                            std::to_string(i));
    }
  };
  check_finite(qpos, "qpos");
  check_finite(qvel, "qvel");
  mjData* d = data_[k];
  std::copy(qpos.begin(), qpos.end(), d->qpos);
  std::copy(qvel.begin(), qvel.end(), d->qvel);
  MujocoCall call;
  WarningCapture capture;
  mj_forward(model_, d);
  record_warnings(k, capture);
  task_->remember(d, memo_.data() + static_cast<std::size_t>(k) * task_->memo_size());
  observe(k, obs_, state_);
}

Snapshot BatchedEnv::snapshot() const {
  CallGuard guard(*this);
  const int n = num_envs();
  Snapshot s;
  s.model = identity();
  s.physics.resize(static_cast<std::size_t>(n) * nstate_);
  for (int k = 0; k < n; ++k) {
    mj_getState(model_, data_[k], s.physics.data() + static_cast<std::size_t>(k) * nstate_,
                kStateSig);
    const auto& words = rngs_[k].state();
    s.rng.insert(s.rng.end(), words.begin(), words.end());
  }
  s.memo = memo_;
  s.elapsed = elapsed_;
  s.obs = obs_;
  s.state = state_;
  return s;
}

void BatchedEnv::restore(const Snapshot& s) {
  CallGuard guard(*this);
  require(s.model.empty() || s.model == identity(),
          "the snapshot is of " + s.model + ", this env is " + identity());
  const std::size_t n = num_envs();
  auto check = [](std::size_t got, std::size_t want, const char* name) {
    require(got == want, std::string("snapshot ") + name + " must have " + std::to_string(want) +
                             " entries for this env, got " + std::to_string(got));
  };
  require(s.elapsed.size() == n, "the snapshot holds " + std::to_string(s.elapsed.size()) +
                                     " envs, this batch has " + std::to_string(n));
  check(s.physics.size(), n * nstate_, "physics");
  check(s.memo.size(), memo_.size(), "memo");
  check(s.rng.size(), n * Rng::kStateWords, "rng");
  check(s.obs.size(), obs_.size(), "obs (agents)");
  for (std::size_t i = 0; i < obs_.size(); ++i) check(s.obs[i].size(), obs_[i].size(), "obs");
  check(s.state.size(), state_.size(), "state");
  for (std::size_t k = 0; k < n; ++k) {
    mj_setState(model_, data_[k], s.physics.data() + k * nstate_, kStateSig);
    std::array<std::uint64_t, Rng::kStateWords> words;
    std::copy_n(s.rng.data() + k * Rng::kStateWords, Rng::kStateWords, words.begin());
    rngs_[k].set_state(words);
  }
  memo_ = s.memo;
  elapsed_ = s.elapsed;
  // Copied into the existing buffers: Python holds views of them.
  for (std::size_t i = 0; i < obs_.size(); ++i) std::copy(s.obs[i].begin(), s.obs[i].end(), obs_[i].begin());
  std::copy(s.state.begin(), s.state.end(), state_.begin());
  needs_reset_ = false;
}

}  // namespace hapo::env
