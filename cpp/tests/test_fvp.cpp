#include <cmath>
#include <random>
#include <stdexcept>
#include <vector>

#include <Eigen/Dense>

#include "algo/fvp.h"
#include "algo/mlp_fisher.h"
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

namespace {

// A two-layer MLP policy with LayerNorms on the input and the hidden layer, written with
// libtorch's own ops, whose mean KL the autograd Fisher (FisherOperator) differentiates.
struct SmallMlp {
  int obs = 4, hidden = 5, out = 3, states = 7;
  torch::Tensor x, w0, b0, w1, b1, in_g, in_b, h_g, h_b, theta, mask;

  explicit SmallMlp(std::uint64_t seed) {
    torch::manual_seed(seed);
    const auto opts = torch::TensorOptions().dtype(torch::kFloat64);
    x = torch::randn({states, obs}, opts);
    w0 = torch::randn({hidden, obs}, opts).requires_grad_();
    b0 = (0.1 * torch::randn({hidden}, opts)).requires_grad_();
    w1 = torch::randn({out, hidden}, opts).requires_grad_();
    b1 = (0.1 * torch::randn({out}, opts)).requires_grad_();
    in_g = (1 + 0.2 * torch::randn({obs}, opts)).requires_grad_();
    in_b = (0.2 * torch::randn({obs}, opts)).requires_grad_();
    h_g = (1 + 0.2 * torch::randn({hidden}, opts)).requires_grad_();
    h_b = (0.2 * torch::randn({hidden}, opts)).requires_grad_();
    theta = (0.3 * torch::randn({out}, opts)).requires_grad_();
    mask = torch::rand({states, out}) > 0.3;
    mask.select(1, 0).fill_(true);
  }

  torch::Tensor output() const {
    auto h = torch::layer_norm(x, {obs}, in_g, in_b);
    h = torch::layer_norm(torch::tanh(torch::addmm(b0, h, w0.t())), {hidden}, h_g, h_b);
    return torch::addmm(b1, h, w1.t());
  }

  // Mean KL(N(mu_old, sigma_old) || N(mu, sigma)), sigma = 0.5 sigmoid(theta).
  torch::Tensor gaussian_kl() const {
    const auto mu = output();
    const auto log_std = std::log(0.5) + torch::log_sigmoid(theta);
    const auto mu_old = mu.detach();
    const auto log_std_old = log_std.detach();
    const auto kl = log_std - log_std_old +
                    (torch::exp(2 * log_std_old) + (mu_old - mu).pow(2)) / (2 * torch::exp(2 * log_std)) -
                    0.5;
    return kl.sum(1).mean();
  }

  torch::Tensor categorical_kl() const {
    const auto logp = torch::log_softmax(output().masked_fill(mask.logical_not(), -1e300), -1);
    const auto logp_old = logp.detach();
    return (logp_old.exp() * (logp_old - logp)).sum(1).mean();
  }

  hapo::MlpParams params() const {
    hapo::MlpParams p;
    p.input_norm = hapo::LayerNormParams{in_g, in_b};
    p.weights = {w0, w1};
    p.biases = {b0, b1};
    p.hidden_norms = {hapo::LayerNormParams{h_g, h_b}};
    p.activation = hapo::Activation::kTanh;
    return p;
  }

  // The flat order of hapo::MlpFisher: std param, input norm, layers, hidden norms.
  std::vector<torch::Tensor> flat_order(bool gaussian) const {
    std::vector<torch::Tensor> order = {in_g, in_b, w0, b0, w1, b1, h_g, h_b};
    if (gaussian) order.insert(order.begin(), theta);
    return order;
  }
};

void check_same_products(const hapo::MlpFisher& fisher, const torch::Tensor& kl,
                         const std::vector<torch::Tensor>& params) {
  const hapo::FisherOperator reference(kl, params, 0.1);
  HAPO_CHECK(fisher.size() == reference.size());
  for (int trial = 0; trial < 3; ++trial) {
    const auto v = torch::randn({fisher.size()}, torch::kFloat64);
    const Vector got = to_eigen(fisher(v));
    const Vector expected = to_eigen(reference(v));
    HAPO_CHECK(expected.norm() > 0.1);
    check_close(got, expected, 1e-12 * expected.norm());
  }
}

}  // namespace

HAPO_TEST(mlp_fisher_gaussian_matches_autograd_fisher) {
  const SmallMlp mlp(17);
  const hapo::MlpFisher fisher(mlp.params(),
                               hapo::GaussianHead{mlp.theta, hapo::StdKind::kSigmoid, 0.5}, mlp.x,
                               0.1);
  check_same_products(fisher, mlp.gaussian_kl(), mlp.flat_order(true));
}

HAPO_TEST(mlp_fisher_masked_categorical_matches_autograd_fisher) {
  const SmallMlp mlp(19);
  const hapo::MlpFisher fisher(mlp.params(), hapo::CategoricalHead{mlp.mask}, mlp.x, 0.1);
  check_same_products(fisher, mlp.categorical_kl(), mlp.flat_order(false));
}
