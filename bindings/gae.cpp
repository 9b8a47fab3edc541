#include "algo/gae.h"
#include "checks.h"
#include "register.h"

namespace py = pybind11;

namespace hapo::bindings {

namespace {

std::pair<torch::Tensor, torch::Tensor> checked_gae(const torch::Tensor& rewards,
                                                    const torch::Tensor& values,
                                                    const torch::Tensor& next_values,
                                                    const torch::Tensor& terminated,
                                                    const torch::Tensor& truncated,
                                                    double gamma, double lam) {
  check_dim(rewards, "rewards", 2, "[T, B]");
  const auto shape = rewards.sizes();
  const std::pair<const torch::Tensor*, const char*> floats[] = {
      {&rewards, "rewards"}, {&values, "values"}, {&next_values, "next_values"}};
  for (auto [t, name] : floats) {
    check_dtype(*t, name, {torch::kFloat32});
    check_shape(*t, name, shape);
    check_cpu_contiguous(*t, name);
  }
  const std::pair<const torch::Tensor*, const char*> flags[] = {
      {&terminated, "terminated"}, {&truncated, "truncated"}};
  for (auto [t, name] : flags) {
    check_dtype(*t, name, {torch::kBool, torch::kUInt8});
    check_shape(*t, name, shape);
    check_cpu_contiguous(*t, name);
    if (t->scalar_type() == torch::kUInt8 && t->gt(1).any().item<bool>()) {
      throw py::value_error(std::string(name) + " given as uint8 must hold only 0 or 1");
    }
  }
  check_unit_interval(gamma, "gamma");
  check_unit_interval(lam, "lam");
  py::gil_scoped_release release;
  return gae(rewards, values, next_values, terminated, truncated, static_cast<float>(gamma),
             static_cast<float>(lam));
}

}  // namespace

void register_gae(py::module_& m) {
  m.def("gae", &checked_gae, py::arg("rewards"), py::arg("values"), py::arg("next_values"),
        py::arg("terminated"), py::arg("truncated"), py::arg("gamma"), py::arg("lam"),
        R"doc(Generalised advantage estimation.

Args:
  rewards: float32 [T, B], reward of step t in environment b.
  values: float32 [T, B], V(s_t).
  next_values: float32 [T, B], V(s_{t+1}); at a truncated step, the value of the
    final observation of the cut episode. Ignored where terminated.
  terminated: bool or uint8 [T, B], the episode ended in a terminal state at step t
    (no bootstrap).
  truncated: bool or uint8 [T, B], the episode was cut at step t by a time limit
    (bootstraps from next_values, and the recursion stops there).
  gamma: discount in [0, 1].
  lam: GAE lambda in [0, 1].

Returns:
  (advantages, returns): float32 [T, B] each; returns = advantages + values.
  The last row bootstraps from next_values alone: pass V of the observation after the batch.

All tensors must be contiguous CPU tensors. Raises TypeError for a wrong dtype and
ValueError for a wrong shape, device, layout, or gamma/lam outside [0, 1].
)doc");
}

}  // namespace hapo::bindings
