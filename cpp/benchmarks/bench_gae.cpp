// Standalone timing of the GAE kernel, no Python: median over repeats.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

#include "algo/gae.h"

int main() {
  const int shapes[][2] = {{200, 120}, {1000, 1088}};
  std::printf("%-12s %14s\n", "[T, B]", "median ms");
  for (auto [T, B] : shapes) {
    const std::size_t n = static_cast<std::size_t>(T) * B;
    std::vector<float> r(n), v(n), nv(n), adv(n), ret(n);
    std::vector<std::uint8_t> term(n), trunc(n);
    std::mt19937 rng(0);
    std::normal_distribution<float> normal;
    for (std::size_t i = 0; i < n; ++i) {
      r[i] = normal(rng);
      v[i] = normal(rng);
      nv[i] = normal(rng);
      term[i] = (rng() % 100) == 0;
    }
    std::vector<double> times;
    for (int rep = 0; rep < 51; ++rep) {
      const auto start = std::chrono::steady_clock::now();
      hapo::gae(r.data(), v.data(), nv.data(), term.data(), trunc.data(), T, B, 0.99f, 0.95f,
                adv.data(), ret.data());
      times.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
              .count());
    }
    std::nth_element(times.begin(), times.begin() + times.size() / 2, times.end());
    std::printf("(%d, %d)%*s %14.4f\n", T, B, T >= 1000 ? 1 : 2, "", times[times.size() / 2]);
  }
  return 0;
}
