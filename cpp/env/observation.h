#pragma once

#include <cstdint>
#include <vector>

#include <mujoco/mujoco.h>

namespace hapo::env {

// An observation is a gather over mjData fields, described by a table built once
// from the model (in Python, hapo/envs/layouts.py): element j of the output is
// op(field[index]) or, for kDiff, field[index] - field[index2], or, for kConst, the
// number `low` whatever the physics (an agent's one-hot id). kTenJ is MuJoCo's sparse
// tendon Jacobian (nJten entries); the layout builder maps dense entries onto it.
enum class Field : std::int32_t {
  kQpos, kQvel, kCfrcExt, kCinert, kCvel, kQfrcActuator, kXpos,
  kQfrcConstraint, kTenJ, kTenLength, kTenVelocity
};
enum class Op : std::int32_t { kCopy, kClip, kSin, kCos, kDiff, kConst };

inline constexpr int kNumFields = 11;
inline constexpr int kNumOps = 6;
// Names in enum order: the Python layout builder encodes tables with these.
inline constexpr const char* kFieldNames[kNumFields] = {
    "qpos", "qvel", "cfrc_ext", "cinert", "cvel", "qfrc_actuator", "xpos",
    "qfrc_constraint", "ten_J", "ten_length", "ten_velocity"};
inline constexpr const char* kOpNames[kNumOps] = {"copy", "clip", "sin", "cos", "diff", "const"};

struct ObsElement {
  Field field;
  Op op;
  std::int32_t index;   // flat index into the field
  std::int32_t index2;  // second operand of kDiff
  double low;           // clip bounds of kClip; the value of kConst
  double high;
};

// Number of flat entries of `field` in a model's mjData.
std::int64_t field_size(const mjModel* m, Field field);

// Throws std::invalid_argument naming the element if an index is out of range,
// an enum is unknown, or clip bounds are inverted.
void validate_layout(const mjModel* m, const std::vector<ObsElement>& layout, const char* what);

// out[j] = element j of the layout, evaluated on d (double), stored as float.
void gather(const mjData* d, const std::vector<ObsElement>& layout, float* out);

}  // namespace hapo::env
