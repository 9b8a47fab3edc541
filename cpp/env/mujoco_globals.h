#pragma once

#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <mujoco/mujoco.h>

namespace hapo::env {

// MuJoCo's callbacks and log handler are process-wide, and the process may belong to
// someone else (the `mujoco` Python package installs its own): we change one only while
// our calls need it. The first of any concurrent instances (on any thread) installs ours
// and keeps what it replaced; the last puts that back. Setting provides `Value`,
// `static Value install()` (returns the replaced value) and `static void restore(Value)`.
template <typename Setting>
class ScopedGlobal {
 public:
  ScopedGlobal() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (depth_++ == 0) saved_ = Setting::install();
  }
  ~ScopedGlobal() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (--depth_ == 0) Setting::restore(saved_);
  }
  ScopedGlobal(const ScopedGlobal&) = delete;
  ScopedGlobal& operator=(const ScopedGlobal&) = delete;

 private:
  static inline std::mutex mutex_;
  static inline int depth_ = 0;
  static inline typename Setting::Value saved_{};
};

// Our handler of MuJoCo's log messages, installed while a WarningCapture or an
// ErrorsAsExceptions lives on any thread. Messages it does not take go to the handler it
// replaced.
struct OurLogHandler {
  using Value = mjfLogHandler;
  static Value install();
  static void restore(Value saved);
};

// Collects the warnings MuJoCo raises on this thread while it lives (such as the
// compiler's deprecation notices about Gymnasium's model files) instead of letting
// MuJoCo's log handler print them and append them to MUJOCO_LOG.TXT in the current
// directory. Other messages, and other threads' warnings, go to the handler that was
// installed before. Instances nest; the innermost one collects.
class WarningCapture {
 public:
  WarningCapture();
  ~WarningCapture();
  WarningCapture(const WarningCapture&) = delete;
  WarningCapture& operator=(const WarningCapture&) = delete;

  // The warnings collected so far, oldest first.
  const std::vector<std::string>& messages() const { return messages_; }
  // The warnings collected so far, oldest first; collection starts over.
  std::vector<std::string> take() { return std::exchange(messages_, {}); }

 private:
  ScopedGlobal<OurLogHandler> handler_;
  std::vector<std::string> messages_;
  std::vector<std::string>* outer_;
};

// A MuJoCo error (mju_error) raised inside ErrorsAsExceptions.
class MujocoError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Memory that cannot be had: a std::bad_alloc (Python's MemoryError) with a message.
class OutOfMemory : public std::bad_alloc {
 public:
  explicit OutOfMemory(std::string message) : message_(std::move(message)) {}
  const char* what() const noexcept override { return message_.c_str(); }

 private:
  std::string message_;
};

// MuJoCo's default answer to an error, such as an allocation that failed, is to print it
// and exit the process. While an instance lives, an error MuJoCo raises on this thread
// throws OutOfMemory (allocation) or MujocoError instead, through MuJoCo's C frames
// (built with unwind tables), to the caller; the mjData that was being worked on must be
// reset before its next step. Errors on other threads go to the handler installed before.
// Instances nest.
class ErrorsAsExceptions {
 public:
  ErrorsAsExceptions();
  ~ErrorsAsExceptions();
  ErrorsAsExceptions(const ErrorsAsExceptions&) = delete;
  ErrorsAsExceptions& operator=(const ErrorsAsExceptions&) = delete;

 private:
  ScopedGlobal<OurLogHandler> handler_;
};

}  // namespace hapo::env
