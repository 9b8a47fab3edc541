#include "env/observation.h"

#include "env/numeric.h"

#include <cmath>
#include <stdexcept>
#include <string>

namespace hapo::env {

namespace {

const mjtNum* field_data(const mjData* d, Field field) {
  switch (field) {
    case Field::kQpos: return d->qpos;
    case Field::kQvel: return d->qvel;
    case Field::kCfrcExt: return d->cfrc_ext;
    case Field::kCinert: return d->cinert;
    case Field::kCvel: return d->cvel;
    case Field::kQfrcActuator: return d->qfrc_actuator;
    case Field::kXpos: return d->xpos;
    case Field::kQfrcConstraint: return d->qfrc_constraint;
    case Field::kTenJ: return d->ten_J;
    case Field::kTenLength: return d->ten_length;
    case Field::kTenVelocity: return d->ten_velocity;
  }
  return nullptr;
}

}  // namespace

std::int64_t field_size(const mjModel* m, Field field) {
  switch (field) {
    case Field::kQpos: return m->nq;
    case Field::kQvel: return m->nv;
    case Field::kCfrcExt: return 6 * static_cast<std::int64_t>(m->nbody);
    case Field::kCinert: return 10 * static_cast<std::int64_t>(m->nbody);
    case Field::kCvel: return 6 * static_cast<std::int64_t>(m->nbody);
    case Field::kQfrcActuator: return m->nv;
    case Field::kXpos: return 3 * static_cast<std::int64_t>(m->nbody);
    case Field::kQfrcConstraint: return m->nv;
    case Field::kTenJ: return m->nJten;
    case Field::kTenLength: return m->ntendon;
    case Field::kTenVelocity: return m->ntendon;
  }
  return 0;
}

void validate_layout(const mjModel* m, const std::vector<ObsElement>& layout, const char* what) {
  for (std::size_t j = 0; j < layout.size(); ++j) {
    const ObsElement& e = layout[j];
    const std::string where = std::string(what) + " element " + std::to_string(j);
    const auto field = static_cast<int>(e.field);
    const auto op = static_cast<int>(e.op);
    if (field < 0 || field >= kNumFields) {
      throw std::invalid_argument(where + ": unknown field " + std::to_string(field));
    }
    if (op < 0 || op >= kNumOps) {
      throw std::invalid_argument(where + ": unknown op " + std::to_string(op));
    }
    const std::int64_t size = field_size(m, e.field);
    const bool second = e.op == Op::kDiff;
    if (e.index < 0 || e.index >= size || (second && (e.index2 < 0 || e.index2 >= size))) {
      throw std::invalid_argument(where + ": index out of range [0, " + std::to_string(size) +
                                  ")");
    }
    if (e.op == Op::kClip && !(e.low <= e.high)) {
      throw std::invalid_argument(where + ": clip bounds must satisfy low <= high");
    }
  }
}

void gather(const mjData* d, const std::vector<ObsElement>& layout, float* out) {
  for (const ObsElement& e : layout) {
    const mjtNum* src = field_data(d, e.field);
    const mjtNum x = src[e.index];
    mjtNum y = x;
    switch (e.op) {
      case Op::kCopy: break;
      case Op::kClip: y = clip(x, e.low, e.high); break;
      case Op::kSin: y = std::sin(x); break;
      case Op::kCos: y = std::cos(x); break;
      case Op::kDiff: y = x - src[e.index2]; break;
      case Op::kConst: y = e.low; break;
    }
    *out++ = static_cast<float>(y);
  }
}

}  // namespace hapo::env
