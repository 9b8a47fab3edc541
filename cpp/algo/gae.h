#pragma once

#include <cstdint>
#include <utility>

#include <torch/torch.h>

namespace hapo {

// Generalised advantage estimation over a time-major batch.
//
// Every array is [T, B], row-major (B contiguous). For step (t, b):
//   delta     = r + gamma * (1 - terminated) * next_value - value
//   advantage = delta + gamma * lam * (1 - terminated) * (1 - truncated) * advantage[t + 1]
//   return    = advantage + value
// A terminated step does not bootstrap; a truncated step bootstraps from
// next_value (the value of the episode's final observation) and, like termination,
// cuts the recursion. advantage[T] is 0: the last row bootstraps from next_values only.
// Unchecked: all pointers valid for T * B elements; flags are 0 or 1.
void gae(const float* rewards, const float* values, const float* next_values,
         const std::uint8_t* terminated, const std::uint8_t* truncated,
         std::int64_t T, std::int64_t B, float gamma, float lam,
         float* advantages, float* returns);

// Tensor form of the kernel above. Unchecked: float32 [T, B] contiguous CPU tensors,
// flags bool or uint8 of the same shape. Returns (advantages, returns).
std::pair<torch::Tensor, torch::Tensor> gae(const torch::Tensor& rewards,
                                            const torch::Tensor& values,
                                            const torch::Tensor& next_values,
                                            const torch::Tensor& terminated,
                                            const torch::Tensor& truncated,
                                            float gamma, float lam);

}  // namespace hapo
