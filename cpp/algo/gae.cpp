#include "algo/gae.h"

#include <vector>

namespace hapo {

void gae(const float* rewards, const float* values, const float* next_values,
         const std::uint8_t* terminated, const std::uint8_t* truncated,
         std::int64_t T, std::int64_t B, float gamma, float lam,
         float* advantages, float* returns) {
  // Walk time backwards a row at a time so the inner loop runs over contiguous
  // environments and vectorises.
  std::vector<float> next_advantage(static_cast<std::size_t>(B), 0.0f);
  for (std::int64_t t = T - 1; t >= 0; --t) {
    const std::int64_t row = t * B;
    for (std::int64_t b = 0; b < B; ++b) {
      const std::int64_t i = row + b;
      const float alive = 1.0f - static_cast<float>(terminated[i]);
      const float carry = alive * (1.0f - static_cast<float>(truncated[i]));
      const float delta = rewards[i] + gamma * alive * next_values[i] - values[i];
      const float advantage = delta + gamma * lam * carry * next_advantage[b];
      next_advantage[b] = advantage;
      advantages[i] = advantage;
      returns[i] = advantage + values[i];
    }
  }
}

std::pair<torch::Tensor, torch::Tensor> gae(const torch::Tensor& rewards,
                                            const torch::Tensor& values,
                                            const torch::Tensor& next_values,
                                            const torch::Tensor& terminated,
                                            const torch::Tensor& truncated,
                                            float gamma, float lam) {
  auto advantages = torch::empty_like(rewards);
  auto returns = torch::empty_like(rewards);
  // bool and uint8 share one byte per element holding 0 or 1.
  gae(rewards.data_ptr<float>(), values.data_ptr<float>(), next_values.data_ptr<float>(),
      static_cast<const std::uint8_t*>(terminated.data_ptr()),
      static_cast<const std::uint8_t*>(truncated.data_ptr()), rewards.size(0), rewards.size(1),
      gamma, lam, advantages.data_ptr<float>(), returns.data_ptr<float>());
  return {advantages, returns};
}

}  // namespace hapo
