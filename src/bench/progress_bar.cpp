#include "bench/progress_bar.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace dsi::bench {

std::string progress_line(const std::string& label, size_t done, size_t total, double elapsed_s, int width) {
  const double frac = total ? std::min(1.0, double(done) / double(total)) : 1.0;
  const int filled = int(frac * width);
  std::string bar(size_t(filled), '=');
  if (filled < width) bar += '>';
  bar.resize(size_t(width), ' ');
  return fmt::format("{} {:>{}}/{} [{}] {:3.0f}% {:7.1f} s", label, done, fmt::format("{}", total).size(), total, bar,
                     100 * frac, elapsed_s);
}

ProgressBar::ProgressBar(std::string label, bool enabled)
    : label_(std::move(label)), active_(enabled && isatty(STDERR_FILENO)) {}

ProgressBar::~ProgressBar() {
  if (drawn_) std::fputc('\n', stderr);
}

void ProgressBar::update(size_t done, size_t total) {
  if (!active_) return;
  const auto now = std::chrono::steady_clock::now();
  // At most 20 redraws a second, and always the last.
  if (drawn_ && done < total && now - last_ < std::chrono::milliseconds(50)) return;
  last_ = now;
  drawn_ = true;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  std::fprintf(stderr, "\r%s", progress_line(label_, done, total, elapsed).c_str());
  std::fflush(stderr);
}

}  // namespace dsi::bench
