#include <cmath>
#include <sstream>
#include <unordered_set>

#include "algo/fvp.h"
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

// A flat vector over all parameters: 1-D, sum(p.numel()) elements, the parameters' dtype.
void check_flat_vector(const torch::Tensor& v, const char* name,
                       const std::vector<torch::Tensor>& params) {
  std::int64_t total = 0;
  for (const auto& p : params) total += p.numel();
  check_dim(v, name, 1, "[sum of the parameters' numel]");
  if (v.numel() != total) {
    std::ostringstream out;
    out << name << " must have " << total << " elements (the total parameter count), got "
        << v.numel();
    throw py::value_error(out.str());
  }
  if (v.scalar_type() != params.front().scalar_type()) {
    throw py::type_error(std::string(name) + " must have the parameters' dtype " +
                         dtype_str(params.front().scalar_type()) + ", got " +
                         dtype_str(v.scalar_type()));
  }
  if (v.device() != params.front().device()) {
    throw py::value_error(std::string(name) + " is on device " + v.device().str() +
                          " but the parameters are on " + params.front().device().str());
  }
  check_all_finite(v, name);
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
  if (max_iterations < 1) {
    throw py::value_error("max_iterations must be >= 1, got " + std::to_string(max_iterations));
  }
  check_finite_nonnegative(tolerance, "tolerance");
  return without_gil([&] {
    return conjugate_gradient(kl, std::move(tensors), g, damping, max_iterations, tolerance);
  });
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
