#include <cmath>
#include <random>
#include <stdexcept>
#include <vector>

#include <Eigen/Dense>

#include "algo/fvp.h"
#include "testing.h"

namespace {

using Matrix = Eigen::MatrixXd;
using Vector = Eigen::VectorXd;

torch::Tensor to_tensor(const Vector& v) {
  return torch::from_blob(const_cast<double*>(v.data()), {v.size()}, torch::kFloat64).clone();
}

Vector to_eigen(const torch::Tensor& t) {
  const auto c = t.contiguous();
  return Eigen::Map<const Vector>(c.data_ptr<double>(), c.numel());
}

Matrix random_spd(int n, std::mt19937& rng) {
  std::normal_distribution<double> normal;
  Matrix m(n, n);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) m(i, j) = normal(rng);
  return m * m.transpose() / n + 0.5 * Matrix::Identity(n, n);
}

Vector random_vector(int n, std::mt19937& rng) {
  std::normal_distribution<double> normal;
  Vector v(n);
  for (int i = 0; i < n; ++i) v(i) = normal(rng);
  return v;
}

void check_close(const Vector& a, const Vector& b, double tol) {
  HAPO_CHECK(a.size() == b.size());
  for (Eigen::Index i = 0; i < a.size(); ++i) HAPO_CHECK_NEAR(a(i), b(i), tol);
}

// A tiny linear-Gaussian policy: mean = W s + b, state-independent log-std.
struct LinearGaussian {
  int obs = 3, act = 2, states = 5;
  Matrix S;                 // [states, obs]
  torch::Tensor W, b, log_std;

  explicit LinearGaussian(std::mt19937& rng) : S(states, obs) {
    std::normal_distribution<double> normal;
    for (int i = 0; i < states; ++i)
      for (int k = 0; k < obs; ++k) S(i, k) = normal(rng);
    W = to_tensor(random_vector(act * obs, rng)).reshape({act, obs}).requires_grad_();
    b = to_tensor(random_vector(act, rng)).requires_grad_();
    log_std = (0.3 * to_tensor(random_vector(act, rng))).requires_grad_();
  }

  // Mean over states of KL(N(mu_old, sigma_old) || N(mu, sigma)), summed over action
  // dimensions, written from the closed form.
  torch::Tensor mean_kl() const {
    const auto s = torch::from_blob(const_cast<double*>(S.data()), {obs, states},
                                    torch::kFloat64).t();  // Eigen is column-major
    const auto mu = torch::matmul(s, W.t()) + b;
    const auto mu_old = mu.detach();
    const auto log_std_old = log_std.detach();
    const auto var = torch::exp(2 * log_std);
    const auto kl = log_std - log_std_old +
                    (torch::exp(2 * log_std_old) + (mu_old - mu).pow(2)) / (2 * var) - 0.5;
    return kl.sum(1).mean();
  }

  // Fisher in the flat layout [W row-major, b, log_std]: the Gaussian's Fisher in
  // (mean, log-std) is diag(1 / sigma^2, 2), pulled back through d mean / d(W, b).
  Matrix fisher() const {
    const int n = act * obs + 2 * act;
    Matrix F = Matrix::Zero(n, n);
    const Vector ls = to_eigen(log_std.detach());
    for (int i = 0; i < states; ++i) {
      for (int j = 0; j < act; ++j) {
        Vector jac = Vector::Zero(n);  // gradient of mean_j at state i
        for (int k = 0; k < obs; ++k) jac(j * obs + k) = S(i, k);
        jac(act * obs + j) = 1.0;
        F += jac * jac.transpose() * std::exp(-2 * ls(j)) / states;
      }
    }
    for (int j = 0; j < act; ++j) F(act * obs + act + j, act * obs + act + j) = 2.0;
    return F;
  }

  std::vector<torch::Tensor> params() const { return {W, b, log_std}; }
};

}  // namespace

HAPO_TEST(cg_matches_eigen_llt_on_spd_matrix) {
  std::mt19937 rng(3);
  const int n = 9;
  const Matrix A = random_spd(n, rng);
  const Vector g = random_vector(n, rng);
  const auto A_t = to_tensor(Eigen::Map<const Vector>(A.data(), n * n)).reshape({n, n});
  const auto result = hapo::conjugate_gradient(
      [&](const torch::Tensor& p) { return A_t.mv(p); }, to_tensor(g), 3 * n, 1e-13);
  const Vector expected = A.llt().solve(g);
  check_close(to_eigen(result.x), expected, 1e-10);
  HAPO_CHECK(result.iterations <= 3 * n);
  HAPO_CHECK_NEAR(result.residual_norm, (g - A * expected).norm(), 1e-10);
  HAPO_CHECK_NEAR(result.curvature, expected.dot(A * expected), 1e-9);
}

HAPO_TEST(cg_with_fisher_of_quadratic_kl_matches_eigen_llt) {
  // kl = 0.5 (theta - theta0)^T A (theta - theta0) has Hessian A everywhere.
  std::mt19937 rng(5);
  const int n = 7;
  const Matrix A = random_spd(n, rng);
  const auto A_t = to_tensor(Eigen::Map<const Vector>(A.data(), n * n)).reshape({n, n});
  const auto theta0 = to_tensor(random_vector(n, rng));
  auto head = theta0.slice(0, 0, 3).clone().requires_grad_();
  auto tail = (theta0.slice(0, 3, n) + 0.1).reshape({2, 2}).requires_grad_();
  const auto d = torch::cat({head, tail.reshape(-1)}) - theta0;
  const auto kl = 0.5 * d.dot(A_t.mv(d));
  const Vector g = random_vector(n, rng);
  const double damping = 0.1;
  const auto result = hapo::conjugate_gradient(kl, {head, tail}, to_tensor(g), damping, 3 * n,
                                               1e-13);
  const Matrix damped = A + damping * Matrix::Identity(n, n);
  check_close(to_eigen(result.x), damped.llt().solve(g), 1e-10);
}

HAPO_TEST(fvp_matches_explicit_fisher_of_linear_gaussian) {
  std::mt19937 rng(11);
  const LinearGaussian model(rng);
  const Matrix F = model.fisher();
  const Vector v = random_vector(static_cast<int>(F.rows()), rng);
  const auto fv = hapo::fisher_vector_product(model.mean_kl(), model.params(), to_tensor(v), 0.0);
  check_close(to_eigen(fv), F * v, 1e-12);
  const auto damped = hapo::fisher_vector_product(model.mean_kl(), model.params(), to_tensor(v),
                                                  0.25);
  check_close(to_eigen(damped), F * v + 0.25 * v, 1e-12);
}

HAPO_TEST(cg_on_linear_gaussian_fisher_matches_eigen_llt) {
  std::mt19937 rng(13);
  const LinearGaussian model(rng);
  const Matrix F = model.fisher();
  const int n = static_cast<int>(F.rows());
  const Vector g = random_vector(n, rng);
  const auto result =
      hapo::conjugate_gradient(model.mean_kl(), model.params(), to_tensor(g), 0.1, 4 * n, 1e-12);
  const Vector expected = (F + 0.1 * Matrix::Identity(n, n)).llt().solve(g);
  check_close(to_eigen(result.x), expected, 1e-8);
}

HAPO_TEST(cg_of_zero_rhs_is_zero_without_products) {
  int products = 0;
  const auto result = hapo::conjugate_gradient(
      [&](const torch::Tensor& p) {
        ++products;
        return p;
      },
      torch::zeros({4}, torch::kFloat64), 10, 0.0);
  HAPO_CHECK(products == 0);
  HAPO_CHECK(result.iterations == 0);
  HAPO_CHECK(result.x.abs().sum().item<double>() == 0.0);
  HAPO_CHECK(result.residual_norm == 0.0 && result.curvature == 0.0);
}

HAPO_TEST(cg_rejects_non_positive_and_non_finite_operators) {
  const auto g = torch::ones({3}, torch::kFloat64);
  bool threw = false;
  try {
    hapo::conjugate_gradient([](const torch::Tensor& p) { return -p; }, g, 5, 0.0);
  } catch (const std::domain_error&) {
    threw = true;
  }
  HAPO_CHECK(threw);
  threw = false;
  try {
    hapo::conjugate_gradient([](const torch::Tensor& p) { return p * NAN; }, g, 5, 0.0);
  } catch (const std::domain_error&) {
    threw = true;
  }
  HAPO_CHECK(threw);
}
