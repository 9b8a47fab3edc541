#include "env/mujoco_globals.h"

#include <atomic>
#include <utility>

namespace hapo::env {

namespace {

// Where this thread's innermost WarningCapture collects; null outside one.
thread_local std::vector<std::string>* sink = nullptr;
// The handler ours replaced. Null only before our first installation has returned: a
// message another thread raises in that instant is dropped.
std::atomic<mjfLogHandler> previous{nullptr};

void handle(const mjLogMessage* message) {
  if (message->level == mjLOG_WARNING && sink) {
    // Called from MuJoCo's C code: no exception may cross it, and a lost warning is harmless.
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

mjfLogHandler WarningCapture::Handler::install() {
  const mjfLogHandler replaced = mju_setLogHandler(&handle);
  previous = replaced;
  return replaced;
}

void WarningCapture::Handler::restore(mjfLogHandler saved) {
  // A handler someone installed over ours meanwhile stays (it forwards to ours, which
  // still forwards to `previous`).
  const mjfLogHandler current = mju_setLogHandler(saved);
  if (current != &handle) mju_setLogHandler(current);
}

WarningCapture::WarningCapture() : outer_(sink) { sink = &messages_; }

WarningCapture::~WarningCapture() { sink = outer_; }

}  // namespace hapo::env
