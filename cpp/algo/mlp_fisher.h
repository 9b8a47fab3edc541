#pragma once

#include <cstdint>
#include <optional>
#include <variant>
#include <vector>

#include <torch/torch.h>

namespace hapo {

// The Fisher of an MLP policy as explicit Jacobian products, without autograd.
//
// For a policy whose distribution parameters are y_b = f(theta, s_b) at each state s_b, the
// Hessian of the mean KL E_b[KL(pi_old(.|s_b) || pi_theta(.|s_b))] at theta = theta_old is the
// Gauss-Newton matrix F = (1/B) sum_b J_b^T D_b J_b: J_b = dy_b/dtheta, D_b the KL's Hessian in
// y at y_old (the term with the KL's gradient in y vanishes there). So
//   F v = (1/B) sum_b J_b^T (D_b (J_b v)),
// one forward-mode product through the network (J v), a small per-state product with D, and
// one reverse-mode product (J^T u), each a few matrix multiplies per layer on activations
// saved by one forward pass when the operator is built.
//
// D per distribution:
// - Gaussian, parameters (mean, log std) per action dimension, log std state-independent:
//   D = diag(1 / sigma^2) on the mean, 2 on the log std, no cross terms. The log std is
//   theta_std itself (StdKind::kExp), or log(c) + log sigmoid(theta_std) with c = std_scale
//   (StdKind::kSigmoid, d log std / d theta_std = sigmoid(-theta_std)).
// - Categorical over logits z (log-softmax, masked choices held at a constant):
//   D = diag(p) - p p^T, p the masked softmax, so masked choices have zero rows.
enum class Activation { kRelu, kTanh };
enum class StdKind { kExp, kSigmoid };

struct LayerNormParams {
  torch::Tensor weight;  // [width]
  torch::Tensor bias;    // [width]
};

// x -> [LayerNorm] -> Linear -> act -> [LayerNorm] -> ... -> Linear: the optional input norm,
// then Linear layers with `activation` between them and, when hidden_norms is not empty, a
// LayerNorm after every hidden activation (one per hidden layer).
struct MlpParams {
  std::optional<LayerNormParams> input_norm;
  std::vector<torch::Tensor> weights;  // [out_k, in_k]
  std::vector<torch::Tensor> biases;   // [out_k]
  std::vector<LayerNormParams> hidden_norms;
  Activation activation = Activation::kRelu;
  double norm_eps = 1e-5;
};

struct GaussianHead {
  torch::Tensor std_param;  // [action_size], the MLP's output size
  StdKind kind = StdKind::kExp;
  double std_scale = 1.0;  // c of StdKind::kSigmoid
};

struct CategoricalHead {
  torch::Tensor action_mask;  // undefined, or bool [B, choices]: false = unavailable
};

using PolicyHead = std::variant<GaussianHead, CategoricalHead>;

// v -> F v + damping * v for the policy (mlp, head) on the states obs [B, in]. With
// row_weights w [B] (defined), F = sum_b w_b J_b^T D_b J_b / sum_b w_b: the Hessian of the
// w-weighted mean KL (rows of inactive agents weigh 0); undefined: the plain mean.
//
// Flat vectors follow the parameter order of hapo's Actor (torch's parameters() order, the
// module's own parameters before its submodules'): the Gaussian's std_param, the input norm
// (weight, bias), each Linear layer (weight row-major, bias), each hidden norm (weight, bias).
//
// Unchecked: consistent shapes, one floating dtype and device for all tensors, B >= 1,
// finite inputs, damping >= 0, row weights >= 0 with a positive sum. A product that comes out non-finite throws std::domain_error.
class MlpFisher {
 public:
  MlpFisher(MlpParams mlp, PolicyHead head, const torch::Tensor& obs, double damping,
            const torch::Tensor& row_weights = {});

  torch::Tensor operator()(const torch::Tensor& v) const;

  std::int64_t size() const { return size_; }
  // The dtype and device of flat vectors.
  torch::TensorOptions options() const { return options_; }

 private:
  struct Hidden {
    torch::Tensor activation_grad;  // [B, width]: relu's 0/1 mask or tanh's 1 - a^2
    torch::Tensor normalized;       // [B, width] LayerNorm's (a - mean) / std, if normed
    torch::Tensor inv_std;          // [B, 1], if normed
  };

  // Forward-mode: J v restricted to the MLP's output, [B, out].
  torch::Tensor jvp(const torch::Tensor& v) const;
  // Reverse-mode: J^T u for the MLP's parameters, written into out's slices.
  void vjp(torch::Tensor u, torch::Tensor& out) const;

  MlpParams mlp_;
  PolicyHead head_;
  double damping_;
  std::int64_t size_ = 0;
  std::int64_t batch_ = 0;
  torch::TensorOptions options_;
  // Offsets into the flat vector.
  std::int64_t input_norm_offset_ = 0;
  std::vector<std::int64_t> weight_offsets_, bias_offsets_, norm_offsets_;
  std::int64_t std_offset_ = 0;
  // Saved by the forward pass.
  torch::Tensor input_normalized_, input_inv_std_;
  std::vector<torch::Tensor> layer_inputs_;  // [B, in_k], the input of Linear layer k
  std::vector<Hidden> hidden_;
  torch::Tensor row_scale_;       // [B, 1] w_b / sum(w), or undefined: 1 / B for every row
  torch::Tensor mean_precision_;  // Gaussian: [action_size] 1 / sigma^2
  torch::Tensor std_curvature_;   // Gaussian: [action_size] 2 (d log std / d theta_std)^2
  torch::Tensor probs_;           // categorical: [B, choices]
};

}  // namespace hapo
