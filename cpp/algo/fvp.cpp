#include "algo/fvp.h"

#include <cmath>
#include <sstream>
#include <stdexcept>
#include <utility>

namespace hapo {

namespace {

// Gradients returned by allow_unused autograd are undefined for tensors the output
// does not depend on; those are exact zeros of the derivative.
torch::Tensor flatten(const std::vector<torch::Tensor>& grads,
                      const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> pieces;
  pieces.reserve(params.size());
  for (std::size_t i = 0; i < params.size(); ++i) {
    pieces.push_back(grads[i].defined() ? grads[i].reshape(-1)
                                        : torch::zeros({params[i].numel()}, params[i].options()));
  }
  return torch::cat(pieces);
}

[[noreturn]] void throw_not_finite(const char* what, std::int64_t iteration, double value) {
  std::ostringstream out;
  out << what << " is not finite (" << value << ") at conjugate-gradient iteration " << iteration
      << ": the KL's derivatives at these parameters contain nan or inf";
  throw std::domain_error(out.str());
}

}  // namespace

FisherOperator::FisherOperator(const torch::Tensor& kl, std::vector<torch::Tensor> params,
                               double damping)
    : params_(std::move(params)), damping_(damping) {
  // The product (grad_kl . v) must be recorded even if the caller runs under no_grad.
  torch::AutoGradMode enable_grad(true);
  const auto grads = torch::autograd::grad({kl}, params_, /*grad_outputs=*/{},
                                           /*retain_graph=*/true, /*create_graph=*/true,
                                           /*allow_unused=*/true);
  kl_grad_ = flatten(grads, params_);
}

torch::Tensor FisherOperator::operator()(const torch::Tensor& v) const {
  torch::AutoGradMode enable_grad(true);
  const auto direction = v.detach();
  const auto directional_derivative = kl_grad_.dot(direction);
  torch::Tensor product;
  if (directional_derivative.requires_grad()) {
    const auto grads = torch::autograd::grad({directional_derivative}, params_, {},
                                             /*retain_graph=*/true, /*create_graph=*/false,
                                             /*allow_unused=*/true);
    product = flatten(grads, params_);
  } else {
    // The KL's gradient does not depend on the parameters: its Hessian is zero.
    product = torch::zeros_like(direction);
  }
  product.add_(direction, damping_);
  if (!torch::isfinite(product).all().item<bool>()) {
    throw std::domain_error(
        "the Fisher-vector product is not finite: the KL's derivatives at these parameters "
        "contain nan or inf");
  }
  return product;
}

torch::Tensor fisher_vector_product(const torch::Tensor& kl, std::vector<torch::Tensor> params,
                                    const torch::Tensor& v, double damping) {
  return FisherOperator(kl, std::move(params), damping)(v);
}

ConjugateGradientResult conjugate_gradient(
    const std::function<torch::Tensor(const torch::Tensor&)>& apply, const torch::Tensor& g,
    std::int64_t max_iterations, double tolerance) {
  torch::NoGradGuard no_grad;
  auto x = torch::zeros_like(g);
  auto r = g.clone();
  auto p = g.clone();
  double rr = r.dot(r).item<double>();
  std::int64_t iterations = 0;
  while (iterations < max_iterations && std::sqrt(rr) > tolerance) {
    const auto Ap = apply(p);
    const double pAp = p.dot(Ap).item<double>();
    if (!std::isfinite(pAp)) throw_not_finite("p^T A p", iterations, pAp);
    if (pAp <= 0.0) {
      std::ostringstream out;
      out << "conjugate gradient: p^T A p = " << pAp << " at iteration " << iterations
          << ", the operator is not positive definite along the search direction "
             "(for a Fisher operator, use damping > 0)";
      throw std::domain_error(out.str());
    }
    const double alpha = rr / pAp;
    x.add_(p, alpha);
    r.sub_(Ap, alpha);
    const double rr_next = r.dot(r).item<double>();
    if (!std::isfinite(rr_next)) throw_not_finite("r^T r", iterations, rr_next);
    p.mul_(rr_next / rr).add_(r);
    rr = rr_next;
    ++iterations;
  }
  if (iterations == 0) return {x, 0, std::sqrt(rr), 0.0};
  const auto Ax = apply(x);
  return {x, iterations, (g - Ax).norm().item<double>(), x.dot(Ax).item<double>()};
}

ConjugateGradientResult conjugate_gradient(const torch::Tensor& kl,
                                           std::vector<torch::Tensor> params,
                                           const torch::Tensor& g, double damping,
                                           std::int64_t max_iterations, double tolerance) {
  const FisherOperator fisher(kl, std::move(params), damping);
  return conjugate_gradient(std::cref(fisher), g, max_iterations, tolerance);
}

}  // namespace hapo
