#pragma once
// A one-line progress bar on stderr, redrawn in place: only when stderr is a terminal (a log
// file or a pipe gets nothing from it). Not thread-safe: one thread updates it.
#include <chrono>
#include <cstddef>
#include <string>

namespace dsi::bench {

// "label  37/100 [==========>          ]  37%  12.3 s", `width` characters of bar.
std::string progress_line(const std::string& label, size_t done, size_t total, double elapsed_s, int width = 30);

class ProgressBar {
 public:
  ProgressBar(std::string label, bool enabled);  // enabled and stderr is a terminal
  ~ProgressBar();                                // ends the line
  void update(size_t done, size_t total);
  bool active() const { return active_; }

 private:
  std::string label_;
  bool active_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now(), last_;
};

}  // namespace dsi::bench
