// Hopper-v5: hop forward; terminates when unhealthy (fallen, tilted, or state blown up).
#include <limits>

#include "env/tasks/planar_walker.h"

namespace hapo::env {

namespace {

constexpr double kHealthyStateLow = -100.0, kHealthyStateHigh = 100.0;
constexpr double kHealthyZLow = 0.7, kHealthyZHigh = std::numeric_limits<double>::infinity();
constexpr double kHealthyAngleLow = -0.2, kHealthyAngleHigh = 0.2;

class Hopper final : public PlanarWalker {
 protected:
  // Every entry of (qpos[2:], qvel) strictly inside the state range, the torso height
  // and angle strictly inside theirs.
  bool is_healthy(const mjModel* m, const mjData* d) const override {
    auto inside = [](double x, double low, double high) { return low < x && x < high; };
    for (int i = 2; i < m->nq; ++i) {
      if (!inside(d->qpos[i], kHealthyStateLow, kHealthyStateHigh)) return false;
    }
    for (int i = 0; i < m->nv; ++i) {
      if (!inside(d->qvel[i], kHealthyStateLow, kHealthyStateHigh)) return false;
    }
    return inside(d->qpos[1], kHealthyZLow, kHealthyZHigh) &&
           inside(d->qpos[2], kHealthyAngleLow, kHealthyAngleHigh);
  }
};

}  // namespace

std::unique_ptr<Task> make_hopper() { return std::make_unique<Hopper>(); }

}  // namespace hapo::env
