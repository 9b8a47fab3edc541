#include "env/thread_pool.h"

#include <string>
#include <system_error>

namespace hapo::env {

namespace {

constexpr int kSpins = 2000;

template <typename Done>
void spin_until(Done done) {
  for (int i = 0; i < kSpins && !done(); ++i) std::this_thread::yield();
}

}  // namespace

ThreadPool::ThreadPool(int num_threads) {
  workers_.reserve(num_threads > 1 ? num_threads - 1 : 0);
  try {
    for (int t = 1; t < num_threads; ++t) workers_.emplace_back(&ThreadPool::worker_loop, this, t);
  } catch (const std::system_error& error) {
    // A destructor does not run for a constructor that throws, and a joinable std::thread
    // destroyed unjoined terminates the process.
    const auto started = workers_.size();
    stop();
    throw std::system_error(error.code(), "the thread pool started " + std::to_string(started) +
                                              " of its " + std::to_string(num_threads - 1) +
                                              " worker threads, then");
  }
}

ThreadPool::~ThreadPool() { stop(); }

void ThreadPool::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  start_.notify_all();
  for (auto& worker : workers_) worker.join();
}

void ThreadPool::run_chunk(int thread) {
  const std::int64_t threads = num_threads();
  const std::int64_t begin = n_ * thread / threads;
  const std::int64_t end = n_ * (thread + 1) / threads;
  if (begin == end) return;
  try {
    (*fn_)(begin, end);
  } catch (...) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!error_) error_ = std::current_exception();
  }
}

void ThreadPool::worker_loop(int thread) {
  std::uint64_t seen = 0;
  for (;;) {
    spin_until([&] { return stopping_ || generation_ != seen; });
    {
      std::unique_lock<std::mutex> lock(mutex_);
      start_.wait(lock, [&] { return stopping_ || generation_ != seen; });
      if (stopping_) return;
      seen = generation_;
    }
    run_chunk(thread);
    bool last = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      last = --pending_ == 0;
    }
    if (last) done_.notify_one();
  }
}

void ThreadPool::run(std::int64_t n, const std::function<void(std::int64_t, std::int64_t)>& fn) {
  if (workers_.empty()) {
    fn(0, n);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    fn_ = &fn;
    n_ = n;
    error_ = nullptr;
    pending_ = static_cast<int>(workers_.size());
    ++generation_;
  }
  start_.notify_all();
  run_chunk(0);
  std::exception_ptr error;
  spin_until([&] { return pending_ == 0; });
  {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return pending_ == 0; });
    error = error_;
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace hapo::env
