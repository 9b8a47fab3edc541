#pragma once

#include <array>
#include <cmath>
#include <cstdint>

namespace hapo::env {

// xoshiro256** with SplitMix64 seeding: a small, fully specified generator whose
// whole state is four words, so an environment's RNG can be saved and restored
// exactly (std:: distributions are implementation-defined and keep hidden state).
class Rng {
 public:
  static constexpr int kStateWords = 4;

  // Stream `stream` of seed `seed`: environment k of a batch uses stream k.
  Rng(std::uint64_t seed, std::uint64_t stream) {
    std::uint64_t x = seed;
    x = splitmix64(x) ^ (stream * 0xD1B54A32D192ED03ull);
    for (auto& word : state_) word = splitmix64(x);
  }

  std::uint64_t next() {
    const std::uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const std::uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }

  // Uniform on [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

  double uniform(double low, double high) { return low + (high - low) * uniform(); }

  // Standard normal by Box-Muller, one value per call so no value is cached between calls.
  double normal() {
    const double u1 = 1.0 - uniform();  // (0, 1]: log stays finite
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

  const std::array<std::uint64_t, kStateWords>& state() const { return state_; }
  void set_state(const std::array<std::uint64_t, kStateWords>& state) { state_ = state; }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  static std::uint64_t splitmix64(std::uint64_t& x) {
    std::uint64_t z = (x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

  std::array<std::uint64_t, kStateWords> state_{};
};

}  // namespace hapo::env
