// The batched env on a small generated model: stepping, snapshots, threads, and the
// errors that must reach the caller as exceptions (run under the sanitizers in CI).
#include <cmath>
#include <limits>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "env/batched_env.h"
#include "env/mujoco_globals.h"
#include "env/thread_pool.h"
#include "testing.h"

namespace {

using hapo::env::BatchedEnv;
using hapo::env::EnvSpec;
using hapo::env::Field;
using hapo::env::ObsElement;
using hapo::env::Op;

// A sliding torso with two hinged links, one motor each (HalfCheetah's reward reads qpos[0]).
constexpr const char* kModel = R"(
<mujoco model="two_links">
  <option timestep="0.01"/>
  <worldbody>
    <geom type="plane" size="10 10 0.1"/>
    <body name="torso" pos="0 0 0.5">
      <joint name="x" type="slide" axis="1 0 0"/>
      <geom type="capsule" fromto="-0.5 0 0 0.5 0 0" size="0.05"/>
      <body name="first" pos="0.5 0 0">
        <joint name="a" type="hinge" axis="0 1 0" range="-1 1"/>
        <geom type="capsule" fromto="0 0 0 0 0 -0.3" size="0.04"/>
        <body name="second" pos="0 0 -0.3">
          <joint name="b" type="hinge" axis="0 1 0" range="-1 1"/>
          <geom type="capsule" fromto="0 0 0 0.2 0 0" size="0.03"/>
        </body>
      </body>
    </body>
  </worldbody>
  <actuator>
    <motor joint="a" ctrlrange="-1 1" ctrllimited="true" gear="20"/>
    <motor joint="b" ctrlrange="-1 1" ctrllimited="true" gear="20"/>
  </actuator>
</mujoco>
)";

std::vector<ObsElement> copies(Field field, std::vector<int> indices) {
  std::vector<ObsElement> layout;
  for (int i : indices) layout.push_back({field, Op::kCopy, i, 0, 0.0, 0.0});
  return layout;
}

EnvSpec spec(int num_envs, int num_threads, const std::string& task = "HalfCheetah") {
  EnvSpec s;
  s.model_path = "<generated two_links>";
  s.model_xml = kModel;
  s.task = task;
  s.num_envs = num_envs;
  s.num_threads = num_threads;
  s.seed = 7;
  s.max_episode_steps = 25;
  s.agent_actuators = {{0}, {1}};
  s.agent_obs = {copies(Field::kQpos, {1}), copies(Field::kQpos, {2})};
  s.state = copies(Field::kQvel, {0, 1, 2});
  return s;
}

// Steps with actions that vary by env and step; returns every reward.
std::vector<float> rollout(BatchedEnv& env, int steps, float scale = 1.0f) {
  const int n = env.num_envs();
  std::vector<float> a0(n), a1(n), rewards;
  for (int t = 0; t < steps; ++t) {
    for (int k = 0; k < n; ++k) {
      a0[k] = scale * std::sin(0.3f * t + k);
      a1[k] = scale * std::cos(0.2f * t - k);
    }
    env.step({a0.data(), a1.data()});
    rewards.insert(rewards.end(), env.reward(), env.reward() + n);
  }
  return rewards;
}

template <typename Error, typename Call>
std::string error_of(Call call) {
  try {
    call();
  } catch (const Error& e) {
    return e.what();
  }
  hapo::testing::fail("no exception of the expected type", __FILE__, __LINE__);
  return "";
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

void* no_memory(std::size_t) { return nullptr; }

}  // namespace

HAPO_TEST(env_results_do_not_depend_on_threads_and_snapshots_resume_exactly) {
  BatchedEnv one(spec(5, 1)), three(spec(5, 3));
  one.reset(std::nullopt);
  three.reset(std::nullopt);
  HAPO_CHECK(rollout(one, 40) == rollout(three, 40));  // crosses the time limit of 25

  const auto snapshot = one.snapshot();
  const auto first = rollout(one, 10);
  one.restore(snapshot);
  HAPO_CHECK(rollout(one, 10) == first);
  for (float r : first) HAPO_CHECK(std::isfinite(r));
}

HAPO_TEST(env_reward_beyond_float32_is_an_error_until_reset) {
  BatchedEnv env(spec(3, 2));
  env.reset(std::nullopt);
  const std::string error = error_of<std::range_error>([&] { rollout(env, 1, 1e20f); });
  HAPO_CHECK(contains(error, "a reward of -"));
  HAPO_CHECK(contains(error, "beyond float32's range"));
  HAPO_CHECK(contains(error_of<std::runtime_error>([&] { rollout(env, 1); }), "call reset()"));
  env.reset(std::nullopt);
  rollout(env, 3, std::numeric_limits<float>::max() / 1e20f);  // cost 1e36: float32 holds it
}

HAPO_TEST(env_set_state_refuses_non_finite_values) {
  BatchedEnv env(spec(2, 1));
  env.reset(std::nullopt);
  auto qpos = env.qpos(1);
  const auto qvel = env.qvel(1);
  qpos[2] = std::numeric_limits<double>::quiet_NaN();
  const auto error = error_of<std::invalid_argument>([&] { env.set_state(1, qpos, qvel); });
  HAPO_CHECK(error == "qpos must be finite, got nan at index 2");
}

HAPO_TEST(env_snapshot_of_another_task_is_refused_naming_both) {
  BatchedEnv cheetah(spec(2, 1)), swimmer(spec(2, 1, "Swimmer"));
  cheetah.reset(std::nullopt);
  swimmer.reset(std::nullopt);
  const auto error = error_of<std::invalid_argument>([&] { swimmer.restore(cheetah.snapshot()); });
  HAPO_CHECK(contains(error, "the snapshot is of HalfCheetah (<generated two_links>: nq 3, nv 3, nu 2;"));
  HAPO_CHECK(contains(error, "this env is Swimmer (<generated two_links>"));
}

HAPO_TEST(env_bounds_threads_and_refuses_a_batch_beyond_memory) {
  HAPO_CHECK(contains(error_of<std::invalid_argument>([] { BatchedEnv env(spec(1, 5000)); }),
                      "num_threads must be in [1, 1024], got 5000"));
  const auto error = error_of<std::bad_alloc>([] { BatchedEnv env(spec(2000000000, 1)); });
  HAPO_CHECK(contains(error, "num_envs = 2000000000 needs at least"));
}

HAPO_TEST(mujoco_errors_become_exceptions_on_this_thread) {
  char error[1000] = "";
  mjSpec* model_spec = mj_parseXMLString(kModel, nullptr, error, sizeof(error));
  HAPO_CHECK(model_spec != nullptr);
  mjModel* m = mj_compile(model_spec, nullptr);
  HAPO_CHECK(m != nullptr);
  {
    hapo::env::ErrorsAsExceptions errors;
    mju_user_malloc = &no_memory;
    const auto message = error_of<hapo::env::OutOfMemory>([&] { mj_makeData(m); });
    mju_user_malloc = nullptr;
    HAPO_CHECK(contains(message, "MuJoCo: ") && contains(message, "allocate"));
  }
  mjData* d = mj_makeData(m);
  HAPO_CHECK(d != nullptr);
  mj_deleteData(d);
  mj_deleteModel(m);
  mj_deleteSpec(model_spec);
}

HAPO_TEST(thread_pool_rethrows_a_chunks_exception_and_keeps_working) {
  hapo::env::ThreadPool pool(3);
  const auto error = error_of<std::runtime_error>([&] {
    pool.run(9, [](std::int64_t begin, std::int64_t) {
      if (begin > 0) throw std::runtime_error("chunk failed");
    });
  });
  HAPO_CHECK(error == "chunk failed");
  std::vector<int> seen(9, 0);
  pool.run(9, [&](std::int64_t begin, std::int64_t end) {
    for (auto i = begin; i < end; ++i) ++seen[i];
  });
  HAPO_CHECK(seen == std::vector<int>(9, 1));
}

HAPO_TEST(env_collects_mujoco_warnings_per_env_from_every_worker) {
  BatchedEnv env(spec(6, 3));
  env.reset(std::nullopt);
  HAPO_CHECK(env.take_warnings().empty());
  for (int k : {1, 4}) {
    env.set_state(k, env.qpos(k), std::vector<mjtNum>(env.nv(), 1e200));  // finite, far too fast
  }
  rollout(env, 1);
  const auto warnings = env.take_warnings();
  HAPO_CHECK(warnings.size() == 2);
  std::vector<bool> named(6, false);
  for (const auto& w : warnings) {
    HAPO_CHECK(contains(w, "Nan, Inf or huge value in QVEL"));
    for (int k = 0; k < 6; ++k) named[k] = named[k] || w.rfind("env " + std::to_string(k) + ": ", 0) == 0;
  }
  HAPO_CHECK(named == std::vector<bool>({false, true, false, false, true, false}));
  HAPO_CHECK(env.take_warnings().empty());  // taken once
  // MuJoCo reset the two envs' physics: the batch steps on normally.
  for (float r : rollout(env, 3)) HAPO_CHECK(std::isfinite(r));
  HAPO_CHECK(env.take_warnings().empty());
}
