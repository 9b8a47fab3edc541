#pragma once

#include <string>
#include <vector>

#include <pybind11/pybind11.h>
#include <torch/extension.h>

// Argument checks shared by the bindings: each throws a Python ValueError or
// TypeError that names the argument and what was expected.
namespace hapo::bindings {

std::string shape_str(torch::IntArrayRef shape);
std::string dtype_str(torch::ScalarType dtype);

void check_dtype(const torch::Tensor& t, const char* name,
                 const std::vector<torch::ScalarType>& accepted);
void check_cpu_contiguous(const torch::Tensor& t, const char* name);
void check_shape(const torch::Tensor& t, const char* name, torch::IntArrayRef shape);
void check_dim(const torch::Tensor& t, const char* name, int64_t dim, const char* layout);
void check_unit_interval(double value, const char* name);
void check_finite_nonnegative(double value, const char* name);
void check_all_finite(const torch::Tensor& t, const char* name);

}  // namespace hapo::bindings
