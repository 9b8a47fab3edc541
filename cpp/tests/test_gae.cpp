#include <random>
#include <vector>

#include "algo/gae.h"
#include "testing.h"

namespace {

// Per-environment recursion in double precision, written independently of the kernel.
std::vector<double> reference(const std::vector<float>& r, const std::vector<float>& v,
                              const std::vector<float>& nv, const std::vector<std::uint8_t>& term,
                              const std::vector<std::uint8_t>& trunc, int T, int B, double gamma,
                              double lam) {
  std::vector<double> adv(static_cast<std::size_t>(T * B));
  for (int b = 0; b < B; ++b) {
    double running = 0.0;
    for (int t = T - 1; t >= 0; --t) {
      const int i = t * B + b;
      if (term[i]) {
        running = r[i] - v[i];
      } else if (trunc[i]) {
        running = r[i] + gamma * nv[i] - v[i];
      } else {
        running = r[i] + gamma * nv[i] - v[i] + gamma * lam * running;
      }
      adv[i] = running;
    }
  }
  return adv;
}

}  // namespace

HAPO_TEST(gae_matches_reference_loop) {
  const int T = 257, B = 9;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  std::bernoulli_distribution end(0.05);
  std::vector<float> r(T * B), v(T * B), nv(T * B), adv(T * B), ret(T * B);
  std::vector<std::uint8_t> term(T * B), trunc(T * B);
  for (int i = 0; i < T * B; ++i) {
    r[i] = normal(rng);
    v[i] = normal(rng);
    nv[i] = normal(rng);
    term[i] = end(rng);
    trunc[i] = term[i] ? 0 : end(rng);
  }
  hapo::gae(r.data(), v.data(), nv.data(), term.data(), trunc.data(), T, B, 0.99f, 0.95f,
            adv.data(), ret.data());
  const auto expected = reference(r, v, nv, term, trunc, T, B, 0.99, 0.95);
  for (int i = 0; i < T * B; ++i) {
    HAPO_CHECK_NEAR(adv[i], expected[i], 1e-4);
    HAPO_CHECK_NEAR(ret[i], expected[i] + v[i], 1e-4);
  }
}
