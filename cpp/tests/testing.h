#pragma once

#include <cmath>
#include <functional>
#include <string>
#include <vector>

// A minimal registry so the C++ tests need nothing beyond the standard library.
namespace hapo::testing {

struct Case {
  std::string name;
  std::function<void()> body;
};

std::vector<Case>& registry();
void fail(const std::string& message, const char* file, int line);

struct Registrar {
  Registrar(const char* name, std::function<void()> body) {
    registry().push_back({name, std::move(body)});
  }
};

}  // namespace hapo::testing

#define HAPO_TEST(name)                                                     \
  static void name();                                                       \
  static ::hapo::testing::Registrar name##_registrar(#name, &name);         \
  static void name()

#define HAPO_CHECK(cond) \
  do {                   \
    if (!(cond)) ::hapo::testing::fail("check failed: " #cond, __FILE__, __LINE__); \
  } while (0)

#define HAPO_CHECK_NEAR(a, b, tol)                                                    \
  do {                                                                                \
    if (!(std::fabs(static_cast<double>(a) - static_cast<double>(b)) <= (tol)))      \
      ::hapo::testing::fail(#a " = " + std::to_string(a) + " vs " #b " = " +          \
                                std::to_string(b), __FILE__, __LINE__);             \
  } while (0)
