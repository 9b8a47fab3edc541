#include "checks.h"

#include <cmath>
#include <sstream>

#include <torch/csrc/DynamicTypes.h>

namespace py = pybind11;

namespace hapo::bindings {

std::string shape_str(torch::IntArrayRef shape) {
  std::ostringstream out;
  out << "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    out << (i ? ", " : "") << shape[i];
  }
  out << (shape.size() == 1 ? ",)" : ")");
  return out.str();
}

std::string dtype_str(torch::ScalarType dtype) {
  return py::repr(py::handle(reinterpret_cast<PyObject*>(torch::getTHPDtype(dtype))))
      .cast<std::string>();
}

void check_dtype(const torch::Tensor& t, const char* name,
                 const std::vector<torch::ScalarType>& accepted) {
  for (auto dtype : accepted) {
    if (t.scalar_type() == dtype) return;
  }
  std::ostringstream out;
  out << name << " must have dtype ";
  for (std::size_t i = 0; i < accepted.size(); ++i) {
    out << (i ? " or " : "") << dtype_str(accepted[i]);
  }
  out << ", got " << dtype_str(t.scalar_type());
  throw py::type_error(out.str());
}

void check_cpu_contiguous(const torch::Tensor& t, const char* name) {
  if (!t.device().is_cpu()) {
    throw py::value_error(std::string(name) + " must be on the CPU, got device " +
                          t.device().str());
  }
  if (!t.is_contiguous()) {
    throw py::value_error(std::string(name) +
                          " must be contiguous (call .contiguous() first)");
  }
}

void check_dim(const torch::Tensor& t, const char* name, int64_t dim, const char* layout) {
  if (t.dim() != dim) {
    throw py::value_error(std::string(name) + " must have shape " + layout + ", got " +
                          shape_str(t.sizes()));
  }
}

void check_shape(const torch::Tensor& t, const char* name, torch::IntArrayRef shape) {
  if (t.sizes() != shape) {
    std::ostringstream out;
    out << name << " must have shape " << shape_str(shape) << ", got " << shape_str(t.sizes());
    throw py::value_error(out.str());
  }
}

void check_unit_interval(double value, const char* name) {
  if (!(value >= 0.0 && value <= 1.0)) {
    std::ostringstream out;
    out << name << " must be in [0, 1], got " << value;
    throw py::value_error(out.str());
  }
}

void check_finite_nonnegative(double value, const char* name) {
  if (!(std::isfinite(value) && value >= 0.0)) {
    std::ostringstream out;
    out << name << " must be a finite number >= 0, got " << value;
    throw py::value_error(out.str());
  }
}

void check_all_finite(const torch::Tensor& t, const char* name) {
  if (!torch::isfinite(t).all().item<bool>()) {
    throw py::value_error(std::string(name) + " must be finite, got nan or inf");
  }
}

}  // namespace hapo::bindings
