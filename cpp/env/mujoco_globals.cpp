#include "env/mujoco_globals.h"

#include <atomic>
#include <utility>

namespace hapo::env {

namespace {

// Where this thread's innermost WarningCapture collects; null outside one.
thread_local std::vector<std::string>* sink = nullptr;
// Live ErrorsAsExceptions instances on this thread.
thread_local int error_scopes = 0;
// The handler ours replaced. Null only before our first installation has returned: a
// message another thread raises in that instant is dropped.
std::atomic<mjfLogHandler> previous{nullptr};

[[noreturn]] void throw_error(const mjLogMessage* message) {
  std::string text = message->subject;
  if (message->body) text.append(": ").append(message->body);
  // mju_malloc's "Could not allocate memory", mj_makeData's "could not allocate mjData", ...
  if (text.find("allocate") != std::string::npos) {
    throw OutOfMemory("MuJoCo: " + text);
  }
  throw MujocoError("MuJoCo error: " + text);
}

void handle(const mjLogMessage* message) {
  if (message->level == mjLOG_ERROR && error_scopes > 0) throw_error(message);
  if (message->level == mjLOG_WARNING && sink) {
    // MuJoCo goes on after a warning, so nothing may be thrown to it; a lost warning is harmless.
    try {
      std::string text = message->subject;
      if (message->body) text.append("\n").append(message->body);
      sink->push_back(std::move(text));
    } catch (...) {
    }
    return;
  }
  if (const mjfLogHandler forward = previous.load()) forward(message);
}

}  // namespace

mjfLogHandler OurLogHandler::install() {
  const mjfLogHandler replaced = mju_setLogHandler(&handle);
  previous = replaced;
  return replaced;
}

void OurLogHandler::restore(mjfLogHandler saved) {
  // A handler someone installed over ours meanwhile stays (it forwards to ours, which
  // still forwards to `previous`).
  const mjfLogHandler current = mju_setLogHandler(saved);
  if (current != &handle) mju_setLogHandler(current);
}

WarningCapture::WarningCapture() : outer_(sink) { sink = &messages_; }

WarningCapture::~WarningCapture() { sink = outer_; }

ErrorsAsExceptions::ErrorsAsExceptions() { ++error_scopes; }

ErrorsAsExceptions::~ErrorsAsExceptions() { --error_scopes; }

}  // namespace hapo::env
