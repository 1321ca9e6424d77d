#pragma once
// Progress of a long job (checkpoint loading): a redrawn bar when stderr is a terminal,
// otherwise a log line every few seconds, so that logs of headless jobs stay readable.
#include <chrono>
#include <cstdint>
#include <string>

namespace dsi {

class Progress {
 public:
  Progress(std::string what, int64_t total, std::string unit = "");
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void advance(int64_t amount);  // not thread-safe: call from one thread
  void finish();
  double elapsed_seconds() const;

 private:
  void draw(bool final);

  std::string what_, unit_;
  int64_t total_, done_ = 0;
  bool tty_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace dsi
