#pragma once

#include <pybind11/pybind11.h>

namespace hapo::bindings {

void register_gae(pybind11::module_& m);
void register_env(pybind11::module_& m);
void register_fvp(pybind11::module_& m);

}  // namespace hapo::bindings
