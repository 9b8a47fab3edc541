#include <mujoco/mujoco.h>

#include "register.h"

namespace py = pybind11;

PYBIND11_MODULE(_core, m) {
  m.doc() = "hapo's C++ core: batched MuJoCo environments, GAE, Fisher-vector products.";
  m.def("mujoco_version", &mj_versionString,
        "Version string of the MuJoCo C library this extension is linked against.");
  hapo::bindings::register_gae(m);
  hapo::bindings::register_env(m);
  hapo::bindings::register_fvp(m);
}
