#include "env/task.h"

#include <cmath>
#include <stdexcept>
#include <utility>

namespace hapo::env {

namespace {

using Factory = std::unique_ptr<Task> (*)();

const std::vector<std::pair<std::string, Factory>>& registry() {
  static const std::vector<std::pair<std::string, Factory>> tasks = {
      {"Ant", &make_ant},
      {"CoupledHalfCheetah", &make_coupled_half_cheetah},
      {"HalfCheetah", &make_half_cheetah},
      {"Hopper", &make_hopper},
      {"Humanoid", &make_humanoid},
      {"HumanoidStandup", &make_humanoid_standup},
      {"InvertedDoublePendulum", &make_inverted_double_pendulum},
      {"InvertedPendulum", &make_inverted_pendulum},
      {"Pusher", &make_pusher},
      {"Reacher", &make_reacher},
      {"Swimmer", &make_swimmer},
      {"Walker2d", &make_walker2d},
  };
  return tasks;
}

}  // namespace

double control_cost(const double* action, int nu, double weight) {
  return weight * sum_of_squares(action, nu);
}

double sum_of_squares(const mjtNum* x, int n) {
  double sum = 0.0;
  for (int i = 0; i < n; ++i) sum += x[i] * x[i];
  return sum;
}

double body_distance(const mjData* d, int body, int other) {
  double squared = 0.0;
  for (int c = 0; c < 3; ++c) {
    const double v = d->xpos[3 * body + c] - d->xpos[3 * other + c];
    squared += v * v;
  }
  return std::sqrt(squared);
}

void add_uniform_noise(const mjtNum* base, int n, double scale, Rng& rng, mjtNum* out) {
  for (int i = 0; i < n; ++i) out[i] = base[i] + rng.uniform(-scale, scale);
}

void add_normal_noise(const mjtNum* base, int n, double scale, Rng& rng, mjtNum* out) {
  for (int i = 0; i < n; ++i) out[i] = base[i] + scale * rng.normal();
}

std::vector<std::string> task_names() {
  std::vector<std::string> names;
  for (const auto& [name, factory] : registry()) names.push_back(name);
  return names;
}

std::unique_ptr<Task> make_task(const std::string& name) {
  for (const auto& [known, factory] : registry()) {
    if (known == name) return factory();
  }
  std::string valid;
  for (const auto& known : task_names()) valid += (valid.empty() ? "" : ", ") + known;
  throw std::invalid_argument("unknown task '" + name + "', expected one of: " + valid);
}

}  // namespace hapo::env
