#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include "env/batched_env.h"
#include "env/mujoco_globals.h"
#include "env/task.h"
#include "register.h"

namespace py = pybind11;

namespace hapo::bindings {

namespace {

using env::BatchedEnv;
using env::ObsElement;

std::string shape_of(const py::array& a) {
  std::ostringstream out;
  out << "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) out << (i ? ", " : "") << a.shape(i);
  out << (a.ndim() == 1 ? ",)" : ")");
  return out.str();
}

// A layout arrives as (int32 [n, 4]: field, op, index, index2; float64 [n, 2]: low, high).
std::vector<ObsElement> to_layout(const py::tuple& table, const std::string& name) {
  if (table.size() != 2) throw py::value_error(name + " must be a pair (ints, bounds)");
  auto ints = py::array_t<std::int32_t, py::array::c_style | py::array::forcecast>::ensure(table[0]);
  auto bounds = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(table[1]);
  if (!ints || ints.ndim() != 2 || ints.shape(1) != 4 || !bounds || bounds.ndim() != 2 ||
      bounds.shape(1) != 2 || bounds.shape(0) != ints.shape(0)) {
    throw py::value_error(name + " must be (int32 [n, 4], float64 [n, 2])");
  }
  std::vector<ObsElement> layout;
  for (py::ssize_t j = 0; j < ints.shape(0); ++j) {
    layout.push_back({static_cast<env::Field>(ints.at(j, 0)), static_cast<env::Op>(ints.at(j, 1)),
                      ints.at(j, 2), ints.at(j, 3), bounds.at(j, 0), bounds.at(j, 1)});
  }
  return layout;
}

std::unique_ptr<BatchedEnv> make_env(const std::string& model_path, const std::string& model_xml,
                                     const std::string& task,
                                     int num_envs, int num_threads, std::uint64_t seed,
                                     int max_episode_steps,
                                     std::vector<std::vector<int>> agent_actuators,
                                     const std::vector<py::tuple>& agent_obs,
                                     const py::tuple& state) {
  env::EnvSpec spec;
  spec.model_path = model_path;
  spec.model_xml = model_xml;
  spec.task = task;
  spec.num_envs = num_envs;
  spec.num_threads = num_threads;
  spec.seed = seed;
  spec.max_episode_steps = max_episode_steps;
  spec.agent_actuators = std::move(agent_actuators);
  for (std::size_t i = 0; i < agent_obs.size(); ++i) {
    spec.agent_obs.push_back(to_layout(agent_obs[i], "agent_obs[" + std::to_string(i) + "]"));
  }
  spec.state = to_layout(state, "state");
  py::gil_scoped_release release;
  return std::make_unique<BatchedEnv>(std::move(spec));
}

template <typename T>
py::array view(py::object owner, T* data, std::vector<py::ssize_t> shape,
               py::dtype dtype = py::dtype::of<T>()) {
  std::vector<py::ssize_t> strides(shape.size());
  py::ssize_t stride = sizeof(T);
  for (std::size_t i = shape.size(); i-- > 0;) {
    strides[i] = stride;
    stride *= shape[i];
  }
  return py::array(dtype, shape, strides, data, owner);
}

py::dict buffers(py::object self) {
  auto& e = self.cast<BatchedEnv&>();
  const py::ssize_t n = e.num_envs();
  py::list obs, final_obs;
  for (int i = 0; i < e.num_agents(); ++i) {
    obs.append(view(self, e.obs(i), {n, e.obs_size(i)}));
    final_obs.append(view(self, e.final_obs(i), {n, e.obs_size(i)}));
  }
  py::dict out;
  out["obs"] = obs;
  out["final_obs"] = final_obs;
  out["state"] = view(self, e.state(), {n, e.state_size()});
  out["final_state"] = view(self, e.final_state(), {n, e.state_size()});
  out["reward"] = view(self, e.reward(), {n});
  // The flags are 0/1 bytes, so they read as NumPy bool without a copy.
  out["terminated"] = view(self, e.terminated(), {n}, py::dtype("bool"));
  out["truncated"] = view(self, e.truncated(), {n}, py::dtype("bool"));
  out["info"] = view(self, e.info(), {n, static_cast<py::ssize_t>(e.info_names().size())});
  return out;
}

void checked_step(BatchedEnv& e, const py::sequence& actions) {
  if (static_cast<int>(actions.size()) != e.num_agents()) {
    throw py::value_error("actions must be a list of " + std::to_string(e.num_agents()) +
                          " arrays (one per agent), got " + std::to_string(actions.size()));
  }
  std::vector<py::array_t<float, py::array::c_style>> held;
  std::vector<const float*> pointers;
  for (int i = 0; i < e.num_agents(); ++i) {
    // Built only on the error paths: a step's checks must cost little next to the physics.
    auto name = [i] { return "actions[" + std::to_string(i) + "]"; };
    if (!py::isinstance<py::array>(actions[i])) {
      throw py::type_error(name() + " must be a NumPy array of dtype float32, got " +
                           py::str(py::type::of(actions[i])).cast<std::string>());
    }
    auto raw = actions[i].cast<py::array>();
    if (!raw.dtype().is(py::dtype::of<float>())) {
      throw py::type_error(name() + " must have dtype float32, got " +
                           py::str(raw.dtype()).cast<std::string>());
    }
    if (raw.ndim() != 2 || raw.shape(0) != e.num_envs() || raw.shape(1) != e.action_size(i)) {
      throw py::value_error(name() + " must have shape (" + std::to_string(e.num_envs()) + ", " +
                            std::to_string(e.action_size(i)) + ") = (num_envs, action_sizes[" +
                            std::to_string(i) + "]), got " + shape_of(raw));
    }
    auto contiguous = py::array_t<float, py::array::c_style>::ensure(raw);
    const float* data = contiguous.data();
    for (py::ssize_t j = 0; j < contiguous.size(); ++j) {
      if (!std::isfinite(data[j])) {
        throw py::value_error(name() + " must be finite, got " + std::to_string(data[j]) +
                              " for env " + std::to_string(j / e.action_size(i)));
      }
    }
    pointers.push_back(data);
    held.push_back(std::move(contiguous));
  }
  py::gil_scoped_release release;
  e.step(pointers);
}

std::vector<mjtNum> state_vector(const py::object& values, int size, const char* name) {
  auto a = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(values);
  if (!a || a.ndim() != 1 || a.shape(0) != size) {
    throw py::value_error(std::string(name) + " must be a 1-D array of " + std::to_string(size) +
                          " numbers");
  }
  return {a.data(), a.data() + size};
}

template <typename T>
py::array_t<T> to_array(const std::vector<T>& v, std::vector<py::ssize_t> shape) {
  py::array_t<T> out(shape);
  std::copy(v.begin(), v.end(), out.mutable_data());
  return out;
}

template <typename T>
std::vector<T> from_array(const py::dict& snapshot, const std::string& key) {
  if (!snapshot.contains(key)) throw py::key_error("snapshot has no '" + key + "'");
  auto a = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(snapshot[key.c_str()]);
  if (!a) throw py::value_error("snapshot['" + key + "'] must be an array");
  return {a.data(), a.data() + a.size()};
}

py::dict snapshot(BatchedEnv& e) {
  env::Snapshot s;
  {
    py::gil_scoped_release release;
    s = e.snapshot();
  }
  const py::ssize_t n = e.num_envs();
  py::dict out;
  out["model"] = s.model;
  out["physics"] = to_array(s.physics, {n, e.nstate()});
  out["memo"] = to_array(s.memo, {n, e.memo_size()});
  out["elapsed"] = to_array(s.elapsed, {n});
  out["rng"] = to_array(s.rng, {n, env::Rng::kStateWords});
  for (int i = 0; i < e.num_agents(); ++i) {
    out[("obs_" + std::to_string(i)).c_str()] = to_array(s.obs[i], {n, e.obs_size(i)});
  }
  out["state"] = to_array(s.state, {n, e.state_size()});
  return out;
}

void restore(BatchedEnv& e, const py::dict& snapshot) {
  env::Snapshot s;
  if (snapshot.contains("model")) {
    if (!py::isinstance<py::str>(snapshot["model"])) {
      throw py::type_error("snapshot['model'] must be a str (the env's identity), got " +
                           py::str(py::type::of(snapshot["model"])).cast<std::string>());
    }
    s.model = snapshot["model"].cast<std::string>();
  }
  s.physics = from_array<mjtNum>(snapshot, "physics");
  s.memo = from_array<double>(snapshot, "memo");
  s.elapsed = from_array<std::int64_t>(snapshot, "elapsed");
  s.rng = from_array<std::uint64_t>(snapshot, "rng");
  // As many obs_i as the snapshot holds: restore() names a snapshot of another env (or of
  // another partition) before it counts them.
  for (int i = 0; snapshot.contains("obs_" + std::to_string(i)); ++i) {
    s.obs.push_back(from_array<float>(snapshot, "obs_" + std::to_string(i)));
  }
  s.state = from_array<float>(snapshot, "state");
  py::gil_scoped_release release;
  e.restore(s);
}

}  // namespace

void register_env(py::module_& m) {
  m.def("env_task_names", &env::task_names, "Names of the C++ MuJoCo tasks.");
  m.attr("ENV_FIELDS") = py::tuple(py::cast(std::vector<std::string>(
      std::begin(env::kFieldNames), std::end(env::kFieldNames))));
  m.attr("ENV_OPS") = py::tuple(py::cast(std::vector<std::string>(
      std::begin(env::kOpNames), std::end(env::kOpNames))));
  m.def("capture_mujoco_warnings",
        [](const py::function& fn) {
          env::WarningCapture capture;
          py::object result = fn();
          return py::make_tuple(result, capture.messages());
        },
        py::arg("fn"),
        "(fn(), warnings): calls fn with the MuJoCo warnings raised on this thread collected "
        "in the list `warnings` instead of printed and appended to MUJOCO_LOG.TXT; MuJoCo's "
        "log handler is put back afterwards.");
  py::class_<BatchedEnv>(m, "BatchedEnv", R"doc(N copies of a MuJoCo task stepped on a thread pool.

Use hapo.envs.make(): it builds the partition and observation tables this takes.
)doc")
      .def(py::init(&make_env), py::arg("model_path"), py::arg("model_xml"), py::arg("task"), py::arg("num_envs"),
           py::arg("num_threads"), py::arg("seed"), py::arg("max_episode_steps"),
           py::arg("agent_actuators"), py::arg("agent_obs"), py::arg("state"))
      .def("buffers", &buffers,
           "Views of the output buffers (overwritten in place by reset/step): obs, final_obs "
           "(lists per agent, float32 [N, obs_size]), state, final_state (float32 [N, "
           "state_size]), reward (float32 [N]), terminated, truncated (bool [N]), info (float32 "
           "[N, len(info_names)]).")
      .def("reset",
           [](BatchedEnv& e, std::optional<std::uint64_t> seed) {
             py::gil_scoped_release release;
             e.reset(seed);
           },
           py::arg("seed") = py::none())
      .def("step", &checked_step, py::arg("actions"),
           "actions: per agent float32 [N, action_size], finite.")
      .def("close",
           [](BatchedEnv& e) {
             py::gil_scoped_release release;
             e.close();
           })
      .def_property_readonly("closed", &BatchedEnv::closed)
      .def("qpos", [](const BatchedEnv& e, int k) {
        auto q = e.qpos(k);
        return to_array(q, {static_cast<py::ssize_t>(q.size())});
      }, py::arg("k"))
      .def("qvel", [](const BatchedEnv& e, int k) {
        auto q = e.qvel(k);
        return to_array(q, {static_cast<py::ssize_t>(q.size())});
      }, py::arg("k"))
      .def("set_state",
           [](BatchedEnv& e, int k, const py::object& qpos, const py::object& qvel) {
             auto p = state_vector(qpos, e.nq(), "qpos");
             auto v = state_vector(qvel, e.nv(), "qvel");
             py::gil_scoped_release release;
             e.set_state(k, p, v);
           },
           py::arg("k"), py::arg("qpos"), py::arg("qvel"))
      .def("take_warnings", &BatchedEnv::take_warnings,
           "The MuJoCo warnings raised by reset/step/set_state since the last call (list of "
           "str, oldest first, each naming its env); MuJoCo's log handler does not see them.")
      .def("snapshot", &snapshot)
      .def("restore", &restore, py::arg("snapshot"))
      .def_property_readonly("num_envs", &BatchedEnv::num_envs)
      .def_property_readonly("num_threads", &BatchedEnv::num_threads)
      .def_property_readonly("num_agents", &BatchedEnv::num_agents)
      .def_property_readonly("state_size", &BatchedEnv::state_size)
      .def_property_readonly("frame_skip", &BatchedEnv::frame_skip)
      .def_property_readonly("dt", &BatchedEnv::dt)
      .def_property_readonly("max_episode_steps", &BatchedEnv::max_episode_steps)
      .def_property_readonly("info_names", &BatchedEnv::info_names)
      .def("obs_size", &BatchedEnv::obs_size)
      .def("action_size", &BatchedEnv::action_size)
      .def("ctrl_range", &BatchedEnv::ctrl_range);
}

}  // namespace hapo::bindings
