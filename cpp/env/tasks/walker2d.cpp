// Walker2d-v5: walk forward; terminates when the torso falls or tilts too far.
#include "env/tasks/planar_walker.h"

namespace hapo::env {

namespace {

constexpr double kHealthyZLow = 0.8, kHealthyZHigh = 2.0;
constexpr double kHealthyAngleLow = -1.0, kHealthyAngleHigh = 1.0;

class Walker2d final : public PlanarWalker {
 protected:
  bool is_healthy(const mjModel*, const mjData* d) const override {
    const double z = d->qpos[1], angle = d->qpos[2];
    return kHealthyZLow < z && z < kHealthyZHigh && kHealthyAngleLow < angle &&
           angle < kHealthyAngleHigh;
  }
};

}  // namespace

std::unique_ptr<Task> make_walker2d() { return std::make_unique<Walker2d>(); }

}  // namespace hapo::env
