#pragma once

namespace hapo::env {

// Clamp to [low, high], letting NaN through as np.clip does (std::clamp and fmin/fmax do not).
inline double clip(double x, double low, double high) {
  return x < low ? low : (x > high ? high : x);
}

}  // namespace hapo::env
