#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include <torch/torch.h>

namespace hapo {

// v -> F v + damping * v for one agent, where F is the Hessian of the agent's mean KL
// E_s[KL(pi_old(.|s) || pi(.|s))] at the old parameters (with pi_old held constant this
// Hessian is the Fisher information of the policy averaged over the states).
//
// The flat gradient of the KL is built once, with its graph; each product is then one
// backward pass of (grad_kl . v), retaining the graph for the next product.
// Flat vectors concatenate the parameters in the given order, each flattened row-major
// (the layout of torch.nn.utils.parameters_to_vector). A parameter the KL does not
// depend on has a zero row and column in F.
//
// Unchecked: kl is a finite scalar with a grad_fn; params are distinct tensors of one
// floating dtype that require grad; vectors have that dtype and size() elements;
// damping >= 0. A product that comes out non-finite throws std::domain_error.
class FisherOperator {
 public:
  FisherOperator(const torch::Tensor& kl, std::vector<torch::Tensor> params, double damping);

  torch::Tensor operator()(const torch::Tensor& v) const;

  std::int64_t size() const { return kl_grad_.numel(); }

 private:
  std::vector<torch::Tensor> params_;
  torch::Tensor kl_grad_;  // flat, carries the graph of the first derivative
  double damping_;
};

// F v + damping * v, one product (see FisherOperator).
torch::Tensor fisher_vector_product(const torch::Tensor& kl, std::vector<torch::Tensor> params,
                                    const torch::Tensor& v, double damping);

struct ConjugateGradientResult {
  torch::Tensor x;            // approximate solution of A x = g, same shape and dtype as g
  std::int64_t iterations;    // operator products spent on the iteration itself
  double residual_norm;       // ||g - A x||, from one extra product (0 when g = 0)
  double curvature;           // x^T A x, from that same product
};

// Conjugate gradient on a symmetric positive definite operator A, from x = 0. Stops when
// the residual norm the iteration tracks is <= tolerance, or after max_iterations
// products. One further product of A with the final x gives the true residual and the
// curvature x^T A x (which TRPO needs for its step size). Throws std::domain_error if
// a product is non-finite or A is not positive along a search direction.
// Unchecked: g is a finite 1-D tensor, max_iterations >= 1, tolerance >= 0.
ConjugateGradientResult conjugate_gradient(
    const std::function<torch::Tensor(const torch::Tensor&)>& apply, const torch::Tensor& g,
    std::int64_t max_iterations, double tolerance);

// Solves (F + damping I) x = g with the FisherOperator of (kl, params, damping).
ConjugateGradientResult conjugate_gradient(const torch::Tensor& kl,
                                           std::vector<torch::Tensor> params,
                                           const torch::Tensor& g, double damping,
                                           std::int64_t max_iterations, double tolerance);

}  // namespace hapo
