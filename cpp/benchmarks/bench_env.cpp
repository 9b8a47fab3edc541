// Env-steps per second of a plain loop of mj_step (the limit: no observation, reward or
// reset) and of BatchedEnv (single agent, observation = qpos, qvel), no Python.
// Usage: bench_env_cpp MODEL_XML TASK [ENV_STEPS] [REPEATS] [NUM_ENVS THREADS]
// (NUM_ENVS THREADS: measure that configuration only; default 16, 64, 256 x 1, 2).
// Prints one line per measurement: "<kind> <num_envs> <threads> <median env-steps/s>".
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <stdexcept>
#include <thread>
#include <vector>

#include <mujoco/mujoco.h>

#include "env/batched_env.h"

namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Every thread steps its own contiguous slice of the envs `steps` times, with uniform
// random controls in [-1, 1].
double plain_loop(const mjModel* m, std::vector<mjData*>& data, int threads, int steps,
                  int frame_skip) {
  auto work = [&](int t) {
    const int n = static_cast<int>(data.size());
    std::uint64_t x = 0x9E3779B97F4A7C15ull * (t + 1);
    for (int s = 0; s < steps; ++s) {
      for (int k = n * t / threads; k < n * (t + 1) / threads; ++k) {
        for (int a = 0; a < m->nu; ++a) {
          x ^= x << 13, x ^= x >> 7, x ^= x << 17;
          data[k]->ctrl[a] = static_cast<double>(x >> 11) * 0x1.0p-52 - 1.0;
        }
        for (int f = 0; f < frame_skip; ++f) mj_step(m, data[k]);
      }
    }
  };
  const auto start = Clock::now();
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work, t);
  work(0);
  for (auto& thread : pool) thread.join();
  return seconds_since(start);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL_XML TASK [ENV_STEPS] [REPEATS] [NUM_ENVS THREADS]\n",
                 argv[0]);
    return 2;
  }
  const char* path = argv[1];
  const std::string task = argv[2];
  const long env_steps = argc > 3 ? std::atol(argv[3]) : 16384;
  const int repeats = argc > 4 ? std::atoi(argv[4]) : 5;

  char error[1024] = "";
  mjModel* m = mj_loadXML(path, nullptr, error, sizeof(error));
  if (!m) {
    std::fprintf(stderr, "cannot load %s: %s\n", path, error);
    return 1;
  }
  std::vector<int> env_counts = {16, 64, 256}, thread_counts = {1, 2};
  if (argc > 6) {
    env_counts = {std::atoi(argv[5])};
    thread_counts = {std::atoi(argv[6])};
  }
  const int frame_skip = hapo::env::make_task(task)->frame_skip();
  for (int num_envs : env_counts) {
    const int steps = static_cast<int>(std::max<long>(1, env_steps / num_envs));
    for (int threads : thread_counts) {
      std::vector<mjData*> data;
      for (int k = 0; k < num_envs; ++k) {
        data.push_back(mj_makeData(m));
        mj_forward(m, data.back());
      }
      std::vector<double> rates;
      plain_loop(m, data, threads, std::max(1, steps / 10), frame_skip);  // warm-up
      for (int r = 0; r < repeats; ++r) {
        rates.push_back(num_envs * static_cast<double>(steps) /
                        plain_loop(m, data, threads, steps, frame_skip));
      }
      std::printf("plain %d %d %.1f\n", num_envs, threads, median(rates));
      for (mjData* d : data) mj_deleteData(d);

      hapo::env::EnvSpec spec;
      spec.model_path = path;
      spec.task = task;
      spec.num_envs = num_envs;
      spec.num_threads = threads;
      spec.agent_actuators.emplace_back();
      for (int a = 0; a < m->nu; ++a) spec.agent_actuators[0].push_back(a);
      for (int i = 0; i < m->nq; ++i) spec.state.push_back({hapo::env::Field::kQpos, hapo::env::Op::kCopy, i, 0, 0, 0});
      for (int i = 0; i < m->nv; ++i) spec.state.push_back({hapo::env::Field::kQvel, hapo::env::Op::kCopy, i, 0, 0, 0});
      spec.agent_obs.push_back(spec.state);
      hapo::env::BatchedEnv env(spec);
      env.reset(std::nullopt);
      // Fresh uniform actions every step, like the plain loop (the physics' cost depends on
      // the motion), drawn before timing.
      constexpr int kBatches = 32;
      std::vector<float> actions(static_cast<std::size_t>(kBatches) * num_envs * m->nu);
      std::uint64_t x = 88172645463325252ull;
      for (float& a : actions) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        a = static_cast<float>(static_cast<double>(x >> 11) * 0x1.0p-52 - 1.0);
      }
      rates.clear();
      for (int r = 0; r <= repeats; ++r) {
        const auto start = Clock::now();
        for (int s = 0; s < steps; ++s) {
          env.step({actions.data() + static_cast<std::size_t>(s % kBatches) * num_envs * m->nu});
        }
        if (r > 0) rates.push_back(num_envs * static_cast<double>(steps) / seconds_since(start));
      }
      std::printf("batched %d %d %.1f\n", num_envs, threads, median(rates));
      std::fflush(stdout);
    }
  }
  mj_deleteModel(m);
  return 0;
}
