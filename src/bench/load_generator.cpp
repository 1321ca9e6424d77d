#include "bench/load_generator.h"

#include <cmath>
#include <deque>
#include <random>

#include "core/error.h"
#include "core/log.h"

namespace dsi::bench {

namespace {

const char* endpoint_path(Endpoint e) {
  return e == Endpoint::endpoint_chat ? "/v1/chat/completions" : "/v1/completions";
}

class LoadGenerator {
 public:
  LoadGenerator(const BenchOptions& opts, const ServerAddress& address, const std::string& model,
                const std::vector<BenchPrompt>& prompts, ProgressCallback on_progress)
      : opts_(opts),
        on_progress_(std::move(on_progress)),
        model_(model),
        prompts_(prompts),
        t0_(Clock::now()),
        client_(ioc_, address, opts.api_key, opts.timeout_s, t0_),
        arrival_timer_(ioc_),
        rng_(opts.seed ^ 0x9e3779b97f4a7c15ull) {
    run_.results.resize(prompts.size());
  }

  LoadRun run() {
    if (std::isinf(opts_.request_rate)) {
      for (size_t i = 0; i < prompts_.size(); ++i) ready_.push_back(i);
      launch_ready();
    } else {
      schedule_arrival();
    }
    ioc_.run();
    run_.duration_s = std::chrono::duration<double>(last_done_ - t0_).count();
    return std::move(run_);
  }

 private:
  // Poisson arrivals: exponential gaps with mean 1 / rate.
  void schedule_arrival() {
    if (next_arrival_ >= prompts_.size()) return;
    std::exponential_distribution<double> gap(opts_.request_rate);
    arrival_time_ += next_arrival_ == 0 ? 0.0 : gap(rng_);
    arrival_timer_.expires_at(t0_ + std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::duration<double>(arrival_time_)));
    arrival_timer_.async_wait([this](beast::error_code ec) {
      if (ec) return;
      ready_.push_back(next_arrival_++);
      launch_ready();
      schedule_arrival();
    });
  }

  void launch_ready() {
    while (!ready_.empty() && n_in_flight_ < opts_.concurrency) {
      size_t i = ready_.front();
      ready_.pop_front();
      ++n_in_flight_;
      client_.post_stream(endpoint_path(opts_.endpoint), request_body(opts_, model_, prompts_[i]),
                          [this, i](StreamResult&& r) { on_done(i, std::move(r)); });
    }
  }

  void on_done(size_t i, StreamResult&& r) {
    --n_in_flight_;
    ++n_done_;
    last_done_ = Clock::now();
    if (!r.ok && n_errors_logged_ < 5) {
      spdlog::warn("request {} failed: {}", i, r.error);
      ++n_errors_logged_;
    }
    run_.results[i] = std::move(r);
    if (on_progress_) on_progress_(n_done_, prompts_.size());
    else if (n_done_ % std::max<size_t>(1, prompts_.size() / 10) == 0)
      spdlog::info("{} / {} requests done", n_done_, prompts_.size());
    launch_ready();
  }

  const BenchOptions& opts_;
  ProgressCallback on_progress_;
  const std::string& model_;
  const std::vector<BenchPrompt>& prompts_;
  net::io_context ioc_{1};
  Clock::time_point t0_, last_done_;
  StreamClient client_;
  net::steady_timer arrival_timer_;
  std::mt19937_64 rng_;
  std::deque<size_t> ready_;
  size_t next_arrival_ = 0;
  double arrival_time_ = 0;
  int n_in_flight_ = 0;
  size_t n_done_ = 0;
  int n_errors_logged_ = 0;
  LoadRun run_;
};

}  // namespace

LoadRun run_load(const BenchOptions& opts, const ServerAddress& address, const std::string& model,
                 const std::vector<BenchPrompt>& prompts, ProgressCallback on_progress) {
  if (opts.concurrency < 1) fail("--concurrency must be at least 1, got {}", opts.concurrency);
  if (!(opts.request_rate > 0)) fail("--request-rate must be positive (inf: all at once), got {}", opts.request_rate);
  LoadGenerator generator(opts, address, model, prompts, std::move(on_progress));
  return generator.run();
}

}  // namespace dsi::bench
