#include <cmath>
#include <sstream>
#include <unordered_set>
#include <utility>

#include <pybind11/stl.h>

#include "algo/fvp.h"
#include "algo/mlp_fisher.h"
#include "checks.h"
#include "register.h"

namespace py = pybind11;

namespace hapo::bindings {

namespace {

const std::vector<torch::ScalarType> kFloating = {torch::kFloat32, torch::kFloat64};

void check_kl(const torch::Tensor& kl) {
  check_dtype(kl, "kl", kFloating);
  if (kl.dim() != 0) {
    throw py::value_error("kl must be a scalar tensor (shape ()), got shape " +
                          shape_str(kl.sizes()) + "; reduce it with .mean()");
  }
  if (!kl.grad_fn()) {
    throw py::value_error(
        "kl must carry an autograd graph (a grad_fn): compute it from the parameters with "
        "grad enabled, not under torch.no_grad() or from detached tensors");
  }
  const double value = kl.item<double>();
  if (!std::isfinite(value)) {
    std::ostringstream out;
    out << "kl must be finite, got " << value;
    throw py::value_error(out.str());
  }
}

// Takes any iterable (a list, or model.parameters()) of distinct tensors that require
// grad, share one floating dtype and live on kl's device.
std::vector<torch::Tensor> checked_params(const py::iterable& params, const torch::Tensor& kl) {
  if (THPVariable_Check(params.ptr())) {
    throw py::type_error("params must be a sequence of tensors, got a single Tensor; "
                         "wrap it in a list");
  }
  std::vector<torch::Tensor> tensors;
  std::unordered_set<const void*> seen;
  for (const auto& item : params) {
    const std::string name = "params[" + std::to_string(tensors.size()) + "]";
    if (!THPVariable_Check(item.ptr())) {
      throw py::type_error(name + " must be a torch.Tensor, got " +
                           std::string(Py_TYPE(item.ptr())->tp_name));
    }
    auto t = THPVariable_Unpack(item.ptr());
    if (tensors.empty()) {
      check_dtype(t, name.c_str(), kFloating);
    } else if (t.scalar_type() != tensors.front().scalar_type()) {
      throw py::type_error(name + " has dtype " + dtype_str(t.scalar_type()) +
                           " but params[0] has " + dtype_str(tensors.front().scalar_type()) +
                           "; all parameters must share one dtype");
    }
    if (t.device() != kl.device()) {
      throw py::value_error(name + " is on device " + t.device().str() + " but kl is on " +
                            kl.device().str() + "; all tensors must share one device");
    }
    if (!t.requires_grad()) {
      throw py::value_error(name + " does not require grad; pass only the tensors the KL is "
                                   "differentiated with respect to");
    }
    if (!seen.insert(t.unsafeGetTensorImpl()).second) {
      throw py::value_error(name + " appears twice in params; pass each parameter once");
    }
    tensors.push_back(std::move(t));
  }
  if (tensors.empty()) throw py::value_error("params must hold at least one tensor, got none");
  return tensors;
}

// A flat vector over all parameters: 1-D, `total` elements, the parameters' dtype and device.
void check_flat_vector(const torch::Tensor& v, const char* name, std::int64_t total,
                       const torch::TensorOptions& like) {
  const auto dtype = c10::typeMetaToScalarType(like.dtype());
  check_dim(v, name, 1, "[sum of the parameters' numel]");
  if (v.numel() != total) {
    std::ostringstream out;
    out << name << " must have " << total << " elements (the total parameter count), got "
        << v.numel();
    throw py::value_error(out.str());
  }
  if (v.scalar_type() != dtype) {
    throw py::type_error(std::string(name) + " must have the parameters' dtype " +
                         dtype_str(dtype) + ", got " + dtype_str(v.scalar_type()));
  }
  if (v.device() != like.device()) {
    throw py::value_error(std::string(name) + " is on device " + v.device().str() +
                          " but the parameters are on " + like.device().str());
  }
  check_all_finite(v, name);
}

void check_flat_vector(const torch::Tensor& v, const char* name,
                       const std::vector<torch::Tensor>& params) {
  std::int64_t total = 0;
  for (const auto& p : params) total += p.numel();
  check_flat_vector(v, name, total, params.front().options());
}

void check_cg_options(std::int64_t max_iterations, double tolerance) {
  if (max_iterations < 1) {
    throw py::value_error("max_iterations must be >= 1, got " + std::to_string(max_iterations));
  }
  check_finite_nonnegative(tolerance, "tolerance");
}

// Runs the computation with the GIL released. Autograd errors on the caller's graph
// (e.g. its saved tensors were freed by an earlier backward) come back as ValueError
// without libtorch's C++ backtrace.
template <class Compute>
auto without_gil(Compute&& compute) {
  try {
    py::gil_scoped_release release;
    return compute();
  } catch (const c10::Error& e) {
    throw py::value_error(std::string("cannot differentiate kl's graph: ") +
                          e.what_without_backtrace());
  }
}

torch::Tensor checked_fisher_vector_product(const torch::Tensor& kl, const py::iterable& params,
                                            const torch::Tensor& v, double damping) {
  check_kl(kl);
  auto tensors = checked_params(params, kl);
  check_flat_vector(v, "v", tensors);
  check_finite_nonnegative(damping, "damping");
  return without_gil([&] { return fisher_vector_product(kl, std::move(tensors), v, damping); });
}

ConjugateGradientResult checked_conjugate_gradient(const torch::Tensor& kl,
                                                   const py::iterable& params,
                                                   const torch::Tensor& g, double damping,
                                                   std::int64_t max_iterations,
                                                   double tolerance) {
  check_kl(kl);
  auto tensors = checked_params(params, kl);
  check_flat_vector(g, "g", tensors);
  check_finite_nonnegative(damping, "damping");
  check_cg_options(max_iterations, tolerance);
  return without_gil([&] {
    return conjugate_gradient(kl, std::move(tensors), g, damping, max_iterations, tolerance);
  });
}

// A parameter of the MLP: the observations' dtype and device, the given shape, finite.
void check_param(const torch::Tensor& t, const std::string& name, const torch::Tensor& obs,
                 torch::IntArrayRef shape) {
  if (t.scalar_type() != obs.scalar_type()) {
    throw py::type_error(name + " has dtype " + dtype_str(t.scalar_type()) +
                         " but obs has " + dtype_str(obs.scalar_type()) +
                         "; all tensors must share one dtype");
  }
  if (t.device() != obs.device()) {
    throw py::value_error(name + " is on device " + t.device().str() + " but obs is on " +
                          obs.device().str());
  }
  check_shape(t, name.c_str(), shape);
  check_all_finite(t, name.c_str());
}

LayerNormParams checked_norm(const std::pair<torch::Tensor, torch::Tensor>& norm,
                             const std::string& name, const torch::Tensor& obs,
                             std::int64_t width) {
  check_param(norm.first, name + "[0] (weight)", obs, {width});
  check_param(norm.second, name + "[1] (bias)", obs, {width});
  return {norm.first, norm.second};
}

MlpFisher make_mlp_fisher(const torch::Tensor& obs, const std::vector<torch::Tensor>& weights,
                          const std::vector<torch::Tensor>& biases,
                          const std::string& distribution,
                          const std::optional<std::pair<torch::Tensor, torch::Tensor>>& input_norm,
                          const std::vector<std::pair<torch::Tensor, torch::Tensor>>& hidden_norms,
                          const std::string& activation, double norm_eps,
                          const std::optional<torch::Tensor>& std_param,
                          const std::string& std_kind, double std_scale,
                          const std::optional<torch::Tensor>& action_mask, double damping,
                          const std::optional<torch::Tensor>& row_weights) {
  check_dtype(obs, "obs", kFloating);
  check_dim(obs, "obs", 2, "[B, obs_size]");
  if (obs.size(0) < 1) throw py::value_error("obs must hold at least one state, got 0 rows");
  check_all_finite(obs, "obs");
  if (weights.empty()) throw py::value_error("weights must hold at least one Linear layer, got none");
  if (biases.size() != weights.size()) {
    throw py::value_error("biases must hold one tensor per weight (" +
                          std::to_string(weights.size()) + "), got " +
                          std::to_string(biases.size()));
  }
  MlpParams mlp;
  if (activation == "relu") {
    mlp.activation = Activation::kRelu;
  } else if (activation == "tanh") {
    mlp.activation = Activation::kTanh;
  } else {
    throw py::value_error("activation must be 'relu' or 'tanh', got '" + activation + "'");
  }
  if (!(std::isfinite(norm_eps) && norm_eps > 0.0)) {
    std::ostringstream out;
    out << "norm_eps must be a finite number > 0, got " << norm_eps;
    throw py::value_error(out.str());
  }
  mlp.norm_eps = norm_eps;
  std::int64_t width = obs.size(1);
  if (input_norm) mlp.input_norm = checked_norm(*input_norm, "input_norm", obs, width);
  for (std::size_t k = 0; k < weights.size(); ++k) {
    const std::string index = "[" + std::to_string(k) + "]";
    check_dim(weights[k], ("weights" + index).c_str(), 2, "[out, in]");
    check_param(weights[k], "weights" + index, obs, {weights[k].size(0), width});
    width = weights[k].size(0);
    check_param(biases[k], "biases" + index, obs, {width});
    mlp.weights.push_back(weights[k]);
    mlp.biases.push_back(biases[k]);
  }
  if (!hidden_norms.empty() && hidden_norms.size() != weights.size() - 1) {
    throw py::value_error("hidden_norms must be empty or hold one (weight, bias) per hidden "
                          "layer (" + std::to_string(weights.size() - 1) + "), got " +
                          std::to_string(hidden_norms.size()));
  }
  for (std::size_t k = 0; k < hidden_norms.size(); ++k) {
    mlp.hidden_norms.push_back(checked_norm(hidden_norms[k],
                                            "hidden_norms[" + std::to_string(k) + "]", obs,
                                            weights[k].size(0)));
  }
  PolicyHead head;
  if (distribution == "gaussian") {
    if (!std_param) throw py::value_error("a gaussian distribution needs std_param, got None");
    if (action_mask) throw py::value_error("action_mask is for categorical distributions only");
    check_param(*std_param, "std_param", obs, {width});
    GaussianHead gaussian{*std_param, StdKind::kExp, std_scale};
    if (std_kind == "sigmoid") {
      gaussian.kind = StdKind::kSigmoid;
      if (!(std::isfinite(std_scale) && std_scale > 0.0)) {
        std::ostringstream out;
        out << "std_scale must be a finite number > 0, got " << std_scale;
        throw py::value_error(out.str());
      }
    } else if (std_kind != "exp") {
      throw py::value_error("std_kind must be 'exp' or 'sigmoid', got '" + std_kind + "'");
    }
    head = gaussian;
  } else if (distribution == "categorical") {
    if (std_param) throw py::value_error("std_param is for gaussian distributions only");
    CategoricalHead categorical;
    if (action_mask) {
      check_dtype(*action_mask, "action_mask", {torch::kBool});
      check_shape(*action_mask, "action_mask", {obs.size(0), width});
      if (action_mask->device() != obs.device()) {
        throw py::value_error("action_mask is on device " + action_mask->device().str() +
                              " but obs is on " + obs.device().str());
      }
      categorical.action_mask = *action_mask;
    }
    head = categorical;
  } else {
    throw py::value_error("distribution must be 'gaussian' or 'categorical', got '" +
                          distribution + "'");
  }
  check_finite_nonnegative(damping, "damping");
  torch::Tensor checked_row_weights;
  if (row_weights) {
    check_param(*row_weights, "row_weights", obs, {obs.size(0)});
    if (!(*row_weights >= 0).all().item<bool>() || !(row_weights->sum().item<double>() > 0)) {
      throw py::value_error("row_weights must be >= 0 with a positive sum (at least one row that counts)");
    }
    checked_row_weights = *row_weights;
  }
  py::gil_scoped_release release;
  return MlpFisher(std::move(mlp), std::move(head), obs, damping, checked_row_weights);
}

}  // namespace

void register_fvp(py::module_& m) {
  py::class_<ConjugateGradientResult>(m, "ConjugateGradientResult",
                                      "Solution and diagnostics of hapo.conjugate_gradient.")
      .def_readonly("x", &ConjugateGradientResult::x,
                    "[n] approximate solution of (F + damping I) x = g, g's dtype.")
      .def_readonly("iterations", &ConjugateGradientResult::iterations,
                    "Conjugate-gradient iterations run (one Fisher-vector product each).")
      .def_readonly("residual_norm", &ConjugateGradientResult::residual_norm,
                    "||g - (F + damping I) x||, from one extra product after the iteration.")
      .def_readonly("curvature", &ConjugateGradientResult::curvature,
                    "x^T (F + damping I) x, from that same product: TRPO's full step is "
                    "sqrt(2 delta / curvature) * x.")
      .def("__repr__", [](const ConjugateGradientResult& r) {
        std::ostringstream out;
        out << "ConjugateGradientResult(x=<" << r.x.numel() << " elements>, iterations="
            << r.iterations << ", residual_norm=" << r.residual_norm
            << ", curvature=" << r.curvature << ")";
        return out.str();
      });

  m.def("fisher_vector_product", &checked_fisher_vector_product, py::arg("kl"),
        py::arg("params"), py::arg("v"), py::arg("damping"),
        R"doc(Fisher-vector product F v + damping * v of one agent's policy.

F is the Hessian of kl at the current parameters. With kl the mean over states of
KL(pi_old(.|s) || pi(.|s)), pi_old held constant (detached) and pi = pi_old at the
current parameters, F is the policy's Fisher information averaged over the states.
Computed by double backward: the gradient of kl (with its graph), then the gradient
of (grad_kl . v).

Args:
  kl: float32 or float64 scalar () with a grad_fn; its graph is kept (retained).
  params: iterable of the n_p tensors kl is differentiated with respect to (e.g.
    list(actor.parameters())), one floating dtype, each requiring grad. A tensor kl
    does not depend on has zero rows and columns in F.
  v: [n] with n = sum(p.numel() for p in params), the parameters' dtype; flat in
    the order of params, each row-major (torch.nn.utils.parameters_to_vector).
  damping: finite, >= 0.

Returns:
  [n] tensor F v + damping * v, the parameters' dtype.

Runs with the GIL released. Raises TypeError for a wrong dtype or a non-tensor
parameter and ValueError for a wrong shape or size, a kl without graph, non-finite
input, a parameter that does not require grad or appears twice, negative damping,
a graph autograd cannot differentiate (e.g. freed by an earlier backward), or a
product that comes out non-finite.
)doc");

  py::class_<MlpFisher>(m, "MlpFisher", R"doc(The Fisher of an MLP policy as explicit Jacobian products.

F = (1/B) sum_b J_b^T D_b J_b, J_b the Jacobian of state b's distribution parameters in the
policy's parameters and D_b the KL's Hessian in those parameters: the Hessian of the mean
KL(pi_old || pi) at pi = pi_old, the operator hapo.fisher_vector_product builds by double
backward. Building runs the network forward once and saves its activations; every product
is then one forward-mode and one reverse-mode pass of matrix multiplies in C++, with no
autograd graph (hapo.models.Actor.fisher builds one from an actor).

The network: an optional input LayerNorm, Linear layers with `activation` between them,
and optionally a LayerNorm after every hidden activation. Gaussian: the output is the mean,
the std is exp(std_param) ('exp') or std_scale * sigmoid(std_param) ('sigmoid'); D is
diag(1 / sigma^2) on the mean and 2 on the log std. Categorical: the output is the logits,
masked choices held constant; D = diag(p) - p p^T.

Flat vectors follow the order of hapo's Actor.parameters(): std_param, input_norm (weight,
bias), each layer (weight row-major, bias), each hidden norm (weight, bias).

Args:
  obs: [B, obs_size] float32 or float64, finite, B >= 1.
  weights, biases: per Linear layer, [out_k, in_k] and [out_k], obs's dtype and device.
  distribution: 'gaussian' or 'categorical'.
  input_norm: None or (weight, bias), each [obs_size].
  hidden_norms: empty, or one (weight, bias) per hidden layer, each [out_k].
  activation: 'relu' or 'tanh'.
  norm_eps: the LayerNorms' epsilon, > 0 (default 1e-5, torch's).
  std_param: gaussian only, [action_size].
  std_kind: 'exp' or 'sigmoid'.
  std_scale: 'sigmoid' only, the std's bound, > 0 (hapo's actors: 0.5).
  action_mask: categorical only, None or bool [B, choices], False = unavailable.
  damping: finite, >= 0, added as damping * v to every product.
  row_weights: None (F averages the states), or [B] >= 0 with a positive sum: F is the
    weighted mean sum_b w_b J_b^T D_b J_b / sum_b w_b (e.g. 0 for rows of inactive agents).

Raises TypeError for a wrong dtype and ValueError for a wrong shape, a non-finite value,
or an unknown name.
)doc")
      .def(py::init(&make_mlp_fisher), py::arg("obs"), py::arg("weights"), py::arg("biases"),
           py::kw_only(), py::arg("distribution"), py::arg("input_norm") = py::none(),
           py::arg("hidden_norms") = std::vector<std::pair<torch::Tensor, torch::Tensor>>{},
           py::arg("activation") = "relu", py::arg("norm_eps") = 1e-5,
           py::arg("std_param") = py::none(), py::arg("std_kind") = "exp",
           py::arg("std_scale") = 1.0,
           py::arg("action_mask") = py::none(), py::arg("damping") = 0.1,
           py::arg("row_weights") = py::none())
      .def_property_readonly("size", &MlpFisher::size,
                             "n, the number of parameters (the length of flat vectors).")
      .def(
          "__call__",
          [](const MlpFisher& fisher, const torch::Tensor& v) {
            check_flat_vector(v, "v", fisher.size(), fisher.options());
            py::gil_scoped_release release;
            return fisher(v);
          },
          py::arg("v"), "F v + damping * v for a flat vector v [n].")
      .def(
          "solve",
          [](const MlpFisher& fisher, const torch::Tensor& g, std::int64_t max_iterations,
             double tolerance) {
            check_flat_vector(g, "g", fisher.size(), fisher.options());
            check_cg_options(max_iterations, tolerance);
            py::gil_scoped_release release;
            return conjugate_gradient(std::cref(fisher), g, max_iterations, tolerance);
          },
          py::arg("g"), py::arg("max_iterations") = 10, py::arg("tolerance") = 1e-5,
          R"doc(Solve (F + damping I) x = g by conjugate gradient, in one C++ call.

As hapo.conjugate_gradient (same stopping rule, the same extra product for the
residual and the curvature x^T (F + damping I) x), with this operator's products.
Returns a ConjugateGradientResult.
)doc");

  m.def("conjugate_gradient", &checked_conjugate_gradient, py::arg("kl"), py::arg("params"),
        py::arg("g"), py::arg("damping") = 0.1, py::arg("max_iterations") = 10,
        py::arg("tolerance") = 1e-5,
        R"doc(Solve (F + damping I) x = g by conjugate gradient, in one C++ call.

F is the Fisher of kl in params, as in hapo.fisher_vector_product; the gradient of kl
is built once and each iteration costs one Fisher-vector product. Starts from x = 0
and stops when the residual norm the iteration tracks is <= tolerance or after
max_iterations products; one more product then gives the true residual and the
curvature x^T (F + damping I) x, so the TRPO step needs no further product.

Args:
  kl: float32 or float64 scalar () with a grad_fn.
  params: iterable of the n_p tensors kl is differentiated with respect to.
  g: [n] right-hand side (the surrogate's gradient), n = sum(p.numel()), the
    parameters' dtype, finite.
  damping: finite, >= 0 (default 0.1, the HATRPO authors' value).
  max_iterations: >= 1 (default 10).
  tolerance: finite, >= 0, on the residual norm (default 1e-5, i.e. a squared
    residual of 1e-10).

Returns:
  ConjugateGradientResult with x ([n]), iterations, residual_norm and curvature.
  For g = 0: x = 0, iterations 0, residual_norm 0, curvature 0.

Runs with the GIL released. Raises as hapo.fisher_vector_product, and ValueError for
max_iterations < 1, a bad tolerance, or F + damping I not positive along a search
direction (use damping > 0).
)doc");
}

}  // namespace hapo::bindings
