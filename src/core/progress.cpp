#include "core/progress.h"

#include <unistd.h>

#include <cstdio>

#include "core/log.h"

namespace dsi {

Progress::Progress(std::string what, int64_t total, std::string unit)
    : what_(std::move(what)), unit_(std::move(unit)), total_(total), tty_(::isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()), last_draw_(start_) {}

Progress::~Progress() {
  if (!finished_ && tty_) std::fputc('\n', stderr);
}

double Progress::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::advance(int64_t amount) {
  done_ += amount;
  auto now = std::chrono::steady_clock::now();
  auto since = now - last_draw_;
  if ((tty_ && since > std::chrono::milliseconds(100)) || (!tty_ && since > std::chrono::seconds(5))) {
    last_draw_ = now;
    draw(false);
  }
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  draw(true);
}

void Progress::draw(bool final) {
  double frac = total_ > 0 ? double(done_) / double(total_) : 1.0;
  double secs = elapsed_seconds();
  if (tty_) {
    constexpr int width = 30;
    int filled = int(frac * width);
    std::string bar(size_t(filled), '#');
    bar.resize(width, '.');
    std::fprintf(stderr, "\r%s [%s] %5.1f%% %lld/%lld %s %.1fs%s", what_.c_str(), bar.c_str(), 100 * frac,
                 static_cast<long long>(done_), static_cast<long long>(total_), unit_.c_str(), secs,
                 final ? "\n" : "");
    std::fflush(stderr);
  } else {
    spdlog::info("{}: {:.1f}% ({}/{} {}) {:.1f}s", what_, 100 * frac, done_, total_, unit_, secs);
  }
}

}  // namespace dsi
