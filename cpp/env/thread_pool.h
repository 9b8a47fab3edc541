#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace hapo::env {

// A persistent pool that runs one function over [0, n) split into num_threads fixed,
// contiguous chunks; chunk 0 runs on the calling thread. Data flow of one run():
//
//   caller: publish (fn, n), bump generation --> workers wake, run chunk t
//   caller: run chunk 0, wait until pending == 0 <-- workers: --pending, notify
//
// Waits first yield for a short while before sleeping on a condition variable: a step
// takes about a millisecond, and a futex wake-up per step would cost a few percent.
//
// Which env runs on which thread never affects results: every env owns its data and RNG.
class ThreadPool {
 public:
  // Starts num_threads - 1 workers. If one cannot start, those already started are
  // stopped and joined, and std::system_error names the thread and the reason.
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs fn(begin, end) on each chunk and returns when all are done; rethrows the first
  // exception a chunk threw.
  void run(std::int64_t n, const std::function<void(std::int64_t, std::int64_t)>& fn);

 private:
  void stop();
  void worker_loop(int thread);
  void run_chunk(int thread);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable start_;
  std::condition_variable done_;
  // Written under mutex_ (so condition waits miss no change), read without it while spinning.
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stopping_{false};
  std::int64_t n_ = 0;
  const std::function<void(std::int64_t, std::int64_t)>* fn_ = nullptr;
  std::exception_ptr error_;
};

}  // namespace hapo::env
