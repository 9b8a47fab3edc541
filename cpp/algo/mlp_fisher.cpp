#include "algo/mlp_fisher.h"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <tuple>
#include <utility>

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

// The Jacobian of standardize at x, applied to d: inv_std (d - mean(d) - xhat mean(xhat d)).
// It is symmetric, so the same function serves forward and reverse mode.
Tensor standardize_jacobian(const Tensor& d, const Tensor& xhat, const Tensor& inv_std) {
  return (d - d.mean(-1, true) - xhat * (d * xhat).mean(-1, true)).mul_(inv_std);
}

Tensor slice_like(const Tensor& flat, std::int64_t offset, const Tensor& like) {
  return flat.narrow(0, offset, like.numel()).view(like.sizes());
}

LayerNormParams detached(const LayerNormParams& norm) {
  return {norm.weight.detach(), norm.bias.detach()};
}

}  // namespace

MlpFisher::MlpFisher(MlpParams mlp, PolicyHead head, const torch::Tensor& obs, double damping)
    : mlp_(std::move(mlp)), head_(std::move(head)), damping_(damping), batch_(obs.size(0)), options_(obs.options()) {
  torch::NoGradGuard no_grad;
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
    mean_precision_ = torch::exp(-2 * log_std) / static_cast<double>(batch_);
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
    dz.mul_(hidden.activation_grad);
    if (mlp_.hidden_norms.empty()) {
      dh = std::move(dz);
      continue;
    }
    const auto& norm = mlp_.hidden_norms[k];
    const auto dw = slice_like(v, norm_offsets_[k], norm.weight);
    const auto db = slice_like(v, norm_offsets_[k] + norm.weight.numel(), norm.bias);
    dh = torch::addcmul(db, hidden.normalized, dw)
             .addcmul_(standardize_jacobian(dz, hidden.normalized, hidden.inv_std), norm.weight);
  }
}

void MlpFisher::vjp(Tensor g, Tensor& out) const {
  const std::int64_t last = static_cast<std::int64_t>(mlp_.weights.size()) - 1;
  for (std::int64_t k = last; k >= 0; --k) {
    if (k < last) {  // g is the gradient with respect to hidden layer k's output
      const auto& hidden = hidden_[k];
      if (!mlp_.hidden_norms.empty()) {
        const auto& norm = mlp_.hidden_norms[k];
        auto dw = slice_like(out, norm_offsets_[k], norm.weight);
        auto db = slice_like(out, norm_offsets_[k] + norm.weight.numel(), norm.bias);
        torch::sum_out(dw, g * hidden.normalized, {0});
        torch::sum_out(db, g, {0});
        g = standardize_jacobian(g * norm.weight, hidden.normalized, hidden.inv_std);
      }
      g = g * hidden.activation_grad;
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
    torch::sum_out(dw, g * input_normalized_, {0});
    torch::sum_out(db, g, {0});
  }
}

Tensor MlpFisher::operator()(const Tensor& v_in) const {
  torch::NoGradGuard no_grad;
  const auto v = v_in.detach().contiguous();
  auto out = torch::empty_like(v);
  auto dout = jvp(v);  // [B, out] = J v
  Tensor u;            // (1/B) D J v
  if (const auto* gaussian = std::get_if<GaussianHead>(&head_)) {
    u = dout.mul_(mean_precision_);
    auto std_out = slice_like(out, std_offset_, gaussian->std_param);
    torch::mul_out(std_out, std_curvature_, slice_like(v, std_offset_, gaussian->std_param));
  } else {
    const auto& mask = std::get<CategoricalHead>(head_).action_mask;
    if (mask.defined()) dout.masked_fill_(mask.logical_not(), 0.0);
    const auto weighted = probs_ * dout;
    u = (weighted - probs_ * weighted.sum(-1, /*keepdim=*/true)).div_(static_cast<double>(batch_));
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
