#include <cstdio>
#include <stdexcept>

#include "testing.h"

namespace hapo::testing {

std::vector<Case>& registry() {
  static std::vector<Case> cases;
  return cases;
}

void fail(const std::string& message, const char* file, int line) {
  throw std::runtime_error(std::string(file) + ":" + std::to_string(line) + ": " + message);
}

}  // namespace hapo::testing

int main() {
  int failed = 0;
  const auto& cases = hapo::testing::registry();
  for (const auto& c : cases) {
    try {
      c.body();
      std::printf("PASS %s\n", c.name.c_str());
    } catch (const std::exception& e) {
      ++failed;
      std::printf("FAIL %s: %s\n", c.name.c_str(), e.what());
    }
  }
  std::printf("%d passed, %d failed\n", static_cast<int>(cases.size()) - failed, failed);
  return failed == 0 ? 0 : 1;
}
