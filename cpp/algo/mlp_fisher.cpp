#include "algo/mlp_fisher.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <tuple>
#include <utility>
#include <vector>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

namespace hapo {

namespace {

using torch::Tensor;

// LayerNorm without its affine part over the last dimension: (x - mean) / sqrt(var + eps)
// and 1 / sqrt(var + eps) [B, 1] (biased variance, as torch.nn.LayerNorm).
std::pair<Tensor, Tensor> standardize(const Tensor& x, double eps) {
  const auto centered = x - x.mean(-1, /*keepdim=*/true);
  const auto inv_std = (centered.square().mean(-1, /*keepdim=*/true) + eps).rsqrt();
  return {centered * inv_std, inv_std};
}

// The LayerNorm steps below are fused row by row: each reads a row a few times while it is in
// cache, where separate tensor ops would stream [B, width] through memory once per op. The
// Jacobian of standardize at x applied to d is inv_std (d - mean(d) - xhat mean(xhat d)); it is
// symmetric, so forward and reverse mode apply the same formula.

// Rows per block of the column sums: a fixed split, so the sums do not depend on the threads.
constexpr std::int64_t kRowBlock = 128;

struct NormRows {
  const Tensor& normalized;  // [B, width] xhat
  const Tensor& inv_std;     // [B, 1]
  const Tensor& weight;      // [width] gamma
};

// Forward mode through a hidden layer's activation and LayerNorm:
// dh = dbeta + xhat dgamma + gamma J(dz * act_grad).
Tensor hidden_norm_jvp(const Tensor& dz, const Tensor& act_grad, const NormRows& norm,
                       const Tensor& dgamma, const Tensor& dbeta) {
  auto dh = torch::empty_like(dz);
  const std::int64_t rows = dz.size(0), width = dz.size(1);
  AT_DISPATCH_FLOATING_TYPES(dz.scalar_type(), "hidden_norm_jvp", [&] {
    const auto* dz_p = dz.data_ptr<scalar_t>();
    const auto* grad_p = act_grad.data_ptr<scalar_t>();
    const auto* xhat_p = norm.normalized.data_ptr<scalar_t>();
    const auto* inv_std_p = norm.inv_std.data_ptr<scalar_t>();
    const auto* gamma = norm.weight.data_ptr<scalar_t>();
    const auto* dgamma_p = dgamma.data_ptr<scalar_t>();
    const auto* dbeta_p = dbeta.data_ptr<scalar_t>();
    auto* dh_p = dh.data_ptr<scalar_t>();
    at::parallel_for(0, rows, kRowBlock, [&](std::int64_t begin, std::int64_t end) {
      std::vector<scalar_t> da(width);
      for (std::int64_t b = begin; b < end; ++b) {
        const std::int64_t row = b * width;
        scalar_t sum = 0, sum_xhat = 0;
        for (std::int64_t j = 0; j < width; ++j) {
          da[j] = dz_p[row + j] * grad_p[row + j];
          sum += da[j];
          sum_xhat += da[j] * xhat_p[row + j];
        }
        const scalar_t mean = sum / width, mean_xhat = sum_xhat / width, r = inv_std_p[b];
        for (std::int64_t j = 0; j < width; ++j) {
          const scalar_t xhat = xhat_p[row + j];
          dh_p[row + j] = dbeta_p[j] + xhat * dgamma_p[j] + gamma[j] * r * (da[j] - mean - xhat * mean_xhat);
        }
      }
    });
  });
  return dh;
}

// Reverse mode through a LayerNorm whose output has gradient gh [B, width]: writes the
// gradients of its weight (sum_b gh xhat) and bias (sum_b gh) and, when act_grad is given
// (a hidden layer), returns the gradient of the activation's input, act_grad J(gh gamma).
Tensor norm_vjp(const Tensor& gh, const Tensor* act_grad, const NormRows& norm, Tensor& dgamma,
                Tensor& dbeta) {
  const std::int64_t rows = gh.size(0), width = gh.size(1);
  const std::int64_t blocks = (rows + kRowBlock - 1) / kRowBlock;
  auto partial = torch::zeros({blocks, 2, width}, gh.options());
  Tensor gz = act_grad ? torch::empty_like(gh) : Tensor();
  AT_DISPATCH_FLOATING_TYPES(gh.scalar_type(), "norm_vjp", [&] {
    const auto* gh_p = gh.data_ptr<scalar_t>();
    const auto* grad_p = act_grad ? act_grad->data_ptr<scalar_t>() : nullptr;
    const auto* xhat_p = norm.normalized.data_ptr<scalar_t>();
    const auto* inv_std_p = norm.inv_std.data_ptr<scalar_t>();
    const auto* gamma = norm.weight.data_ptr<scalar_t>();
    auto* partial_p = partial.data_ptr<scalar_t>();
    auto* gz_p = act_grad ? gz.data_ptr<scalar_t>() : nullptr;
    at::parallel_for(0, blocks, 1, [&](std::int64_t first, std::int64_t last) {
      std::vector<scalar_t> gx(width);
      for (std::int64_t block = first; block < last; ++block) {
        auto* block_dgamma = partial_p + block * 2 * width;
        auto* block_dbeta = block_dgamma + width;
        for (std::int64_t b = block * kRowBlock; b < std::min(rows, (block + 1) * kRowBlock); ++b) {
          const std::int64_t row = b * width;
          scalar_t sum = 0, sum_xhat = 0;
          for (std::int64_t j = 0; j < width; ++j) {
            const scalar_t g = gh_p[row + j], xhat = xhat_p[row + j];
            block_dgamma[j] += g * xhat;
            block_dbeta[j] += g;
            gx[j] = g * gamma[j];
            sum += gx[j];
            sum_xhat += gx[j] * xhat;
          }
          if (!gz_p) continue;
          const scalar_t mean = sum / width, mean_xhat = sum_xhat / width, r = inv_std_p[b];
          for (std::int64_t j = 0; j < width; ++j) {
            gz_p[row + j] = grad_p[row + j] * r * (gx[j] - mean - xhat_p[row + j] * mean_xhat);
          }
        }
      }
    });
  });
  const auto sums = partial.sum(0);  // [2, width], blocks added in a fixed order
  dgamma.copy_(sums[0]);
  dbeta.copy_(sums[1]);
  return gz;
}

Tensor slice_like(const Tensor& flat, std::int64_t offset, const Tensor& like) {
  return flat.narrow(0, offset, like.numel()).view(like.sizes());
}

LayerNormParams detached(const LayerNormParams& norm) {
  return {norm.weight.detach().contiguous(), norm.bias.detach()};
}

}  // namespace

MlpFisher::MlpFisher(MlpParams mlp, PolicyHead head, const torch::Tensor& obs, double damping,
                     const torch::Tensor& row_weights)
    : mlp_(std::move(mlp)), head_(std::move(head)), damping_(damping), batch_(obs.size(0)), options_(obs.options()) {
  torch::NoGradGuard no_grad;
  if (row_weights.defined()) row_scale_ = (row_weights / row_weights.sum()).reshape({-1, 1});
  if (mlp_.input_norm) mlp_.input_norm = detached(*mlp_.input_norm);
  for (auto& w : mlp_.weights) w = w.detach();
  for (auto& b : mlp_.biases) b = b.detach();
  for (auto& norm : mlp_.hidden_norms) norm = detached(norm);

  std::int64_t offset = 0;
  if (auto* gaussian = std::get_if<GaussianHead>(&head_)) {
    gaussian->std_param = gaussian->std_param.detach();
    std_offset_ = offset;
    offset += gaussian->std_param.numel();
  }
  if (mlp_.input_norm) {
    input_norm_offset_ = offset;
    offset += 2 * mlp_.input_norm->weight.numel();
  }
  for (std::size_t k = 0; k < mlp_.weights.size(); ++k) {
    weight_offsets_.push_back(offset);
    offset += mlp_.weights[k].numel();
    bias_offsets_.push_back(offset);
    offset += mlp_.biases[k].numel();
  }
  for (const auto& norm : mlp_.hidden_norms) {
    norm_offsets_.push_back(offset);
    offset += 2 * norm.weight.numel();
  }

  // The forward pass, saving what the Jacobian products need.
  Tensor h = obs.detach();
  if (mlp_.input_norm) {
    std::tie(input_normalized_, input_inv_std_) = standardize(h, mlp_.norm_eps);
    h = torch::addcmul(mlp_.input_norm->bias, input_normalized_, mlp_.input_norm->weight);
  }
  const std::size_t last = mlp_.weights.size() - 1;
  Tensor out;
  for (std::size_t k = 0; k <= last; ++k) {
    layer_inputs_.push_back(h);
    const auto z = torch::addmm(mlp_.biases[k], h, mlp_.weights[k].t());
    if (k == last) {
      out = z;
      break;
    }
    Hidden hidden;
    Tensor a;
    if (mlp_.activation == Activation::kRelu) {
      a = z.relu();
      hidden.activation_grad = (z > 0).to(z.scalar_type());
    } else {
      a = z.tanh();
      hidden.activation_grad = 1 - a.square();
    }
    if (!mlp_.hidden_norms.empty()) {
      std::tie(hidden.normalized, hidden.inv_std) = standardize(a, mlp_.norm_eps);
      const auto& norm = mlp_.hidden_norms[k];
      h = torch::addcmul(norm.bias, hidden.normalized, norm.weight);
    } else {
      h = a;
    }
    hidden_.push_back(std::move(hidden));
  }

  if (const auto* gaussian = std::get_if<GaussianHead>(&head_)) {
    const auto& theta = gaussian->std_param;
    const bool exp = gaussian->kind == StdKind::kExp;
    const auto log_std = exp ? theta : torch::log_sigmoid(theta) + std::log(gaussian->std_scale);
    mean_precision_ = torch::exp(-2 * log_std);
    const auto log_std_grad = exp ? torch::ones_like(theta) : torch::sigmoid(-theta);
    std_curvature_ = 2 * log_std_grad.square();
  } else {
    const auto& mask = std::get<CategoricalHead>(head_).action_mask;
    // A row with no available choice is uniform, as hapo's actors make it; its masked
    // logits are constants, so it adds nothing to F (jvp's output is masked in operator()).
    const double lowest = out.scalar_type() == torch::kFloat32
                              ? static_cast<double>(std::numeric_limits<float>::lowest())
                              : std::numeric_limits<double>::lowest();
    const auto logits = mask.defined() ? out.masked_fill(mask.logical_not(), lowest) : out;
    probs_ = torch::softmax(logits, -1);
  }
  size_ = offset;
}

Tensor MlpFisher::jvp(const Tensor& v) const {
  Tensor dh;  // tangent of the current layer's input; undefined = zero (the observations)
  if (mlp_.input_norm) {
    const auto& norm = *mlp_.input_norm;
    const auto dw = slice_like(v, input_norm_offset_, norm.weight);
    const auto db = slice_like(v, input_norm_offset_ + norm.weight.numel(), norm.bias);
    dh = torch::addcmul(db, input_normalized_, dw);
  }
  const std::size_t last = mlp_.weights.size() - 1;
  for (std::size_t k = 0;; ++k) {
    const auto& w = mlp_.weights[k];
    auto dz = torch::addmm(slice_like(v, bias_offsets_[k], mlp_.biases[k]), layer_inputs_[k],
                           slice_like(v, weight_offsets_[k], w).t());
    if (dh.defined()) dz.addmm_(dh, w.t());
    if (k == last) return dz;
    const auto& hidden = hidden_[k];
    if (mlp_.hidden_norms.empty()) {
      dh = dz.mul_(hidden.activation_grad);
      continue;
    }
    const auto& norm = mlp_.hidden_norms[k];
    dh = hidden_norm_jvp(dz, hidden.activation_grad,
                         {hidden.normalized, hidden.inv_std, norm.weight},
                         slice_like(v, norm_offsets_[k], norm.weight),
                         slice_like(v, norm_offsets_[k] + norm.weight.numel(), norm.bias));
  }
}

void MlpFisher::vjp(Tensor g, Tensor& out) const {
  const std::int64_t last = static_cast<std::int64_t>(mlp_.weights.size()) - 1;
  for (std::int64_t k = last; k >= 0; --k) {
    if (k < last) {  // g is the gradient with respect to hidden layer k's output
      const auto& hidden = hidden_[k];
      if (mlp_.hidden_norms.empty()) {
        g = g * hidden.activation_grad;
      } else {
        const auto& norm = mlp_.hidden_norms[k];
        auto dw = slice_like(out, norm_offsets_[k], norm.weight);
        auto db = slice_like(out, norm_offsets_[k] + norm.weight.numel(), norm.bias);
        g = norm_vjp(g, &hidden.activation_grad, {hidden.normalized, hidden.inv_std, norm.weight},
                     dw, db);
      }
    }
    const auto& w = mlp_.weights[k];
    auto dw = slice_like(out, weight_offsets_[k], w);
    auto db = slice_like(out, bias_offsets_[k], mlp_.biases[k]);
    torch::mm_out(dw, g.t(), layer_inputs_[k]);
    torch::sum_out(db, g, {0});
    if (k > 0 || mlp_.input_norm) g = g.mm(w);
  }
  if (mlp_.input_norm) {
    const auto& norm = *mlp_.input_norm;
    auto dw = slice_like(out, input_norm_offset_, norm.weight);
    auto db = slice_like(out, input_norm_offset_ + norm.weight.numel(), norm.bias);
    norm_vjp(g, nullptr, {input_normalized_, input_inv_std_, norm.weight}, dw, db);
  }
}

Tensor MlpFisher::operator()(const Tensor& v_in) const {
  torch::NoGradGuard no_grad;
  const auto v = v_in.detach().contiguous();
  auto out = torch::empty_like(v);
  auto dout = jvp(v);  // [B, out] = J v
  Tensor u;            // D J v, each row scaled by its weight (1/B, or w_b / sum(w))
  if (const auto* gaussian = std::get_if<GaussianHead>(&head_)) {
    u = dout.mul_(mean_precision_);
    auto std_out = slice_like(out, std_offset_, gaussian->std_param);
    torch::mul_out(std_out, std_curvature_, slice_like(v, std_offset_, gaussian->std_param));
  } else {
    const auto& mask = std::get<CategoricalHead>(head_).action_mask;
    if (mask.defined()) dout.masked_fill_(mask.logical_not(), 0.0);
    const auto weighted = probs_ * dout;
    u = weighted - probs_ * weighted.sum(-1, /*keepdim=*/true);
  }
  if (row_scale_.defined()) {
    u.mul_(row_scale_);
  } else {
    u.div_(static_cast<double>(batch_));
  }
  vjp(std::move(u), out);
  out.add_(v, damping_);
  if (!torch::isfinite(out).all().item<bool>()) {
    throw std::domain_error(
        "the Fisher-vector product is not finite: the policy's activations or parameters "
        "contain nan or inf");
  }
  return out;
}

}  // namespace hapo
