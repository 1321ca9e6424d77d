#include "server/shutdown.h"

#include <atomic>
#include <csignal>

#include "core/log.h"

namespace dsi::server {

namespace {

// Who sent the last SIGTERM: Asio's signal_set reports only the number, so a SA_SIGINFO
// handler in front of Asio's records the sender, then calls it.
std::atomic<int> g_sigterm_sender{0};
struct sigaction g_asio_sigterm;

void record_sigterm_sender(int signal, siginfo_t* info, void* context) {
  g_sigterm_sender.store(info ? int(info->si_pid) : 0, std::memory_order_relaxed);
  if (g_asio_sigterm.sa_flags & SA_SIGINFO) g_asio_sigterm.sa_sigaction(signal, info, context);
  else if (g_asio_sigterm.sa_handler != SIG_DFL && g_asio_sigterm.sa_handler != SIG_IGN)
    g_asio_sigterm.sa_handler(signal);
}

const char* signal_name(int signal) {
  switch (signal) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    case SIGUSR1: return "SIGUSR1";
  }
  return "signal";
}

}  // namespace

// The signal set and the timer share one strand: with several I/O threads, a cancel racing
// the re-arming of a wait would otherwise leave a wait pending and the io_context never out
// of work.
ShutdownController::ShutdownController(net::io_context& ioc, Engine& engine, HttpServer& server,
                                       double drain_timeout_s, int launcher_pid, GroupHealth* group_health)
    : signals_(net::make_strand(ioc), SIGINT, SIGTERM, SIGUSR1),
      drain_timer_(signals_.get_executor()),
      engine_(engine),
      server_(server),
      drain_timeout_s_(drain_timeout_s),
      launcher_pid_(group_health ? launcher_pid : 0),
      group_health_(group_health) {
  if (launcher_pid_ > 0) {
    struct sigaction sa {};
    sa.sa_sigaction = record_sigterm_sender;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, &g_asio_sigterm);  // after signals_ installed Asio's handler
  }
  wait();
}

ShutdownController::~ShutdownController() {
  // Asio's own handler back, for signal_set's teardown.
  if (launcher_pid_ > 0) sigaction(SIGTERM, &g_asio_sigterm, nullptr);
}

void ShutdownController::wait() {
  if (finished_) return;
  signals_.async_wait([this](const beast::error_code& ec, int signal) {
    if (ec) return;
    on_signal(signal);
    wait();
  });
}

void ShutdownController::on_signal(int signal) {
  if (group_failed_) {
    spdlog::warn("{}: exiting now (a rank of the group failed)", signal_name(signal));
    return finish(true);
  }
  if (signal == SIGTERM && launcher_pid_ > 0 && g_sigterm_sender.load(std::memory_order_relaxed) == launcher_pid_) {
    spdlog::error("SIGTERM from the launcher (pid {}): a rank of the job exited or mpirun was signalled, and "
                  "mpirun ends every rank shortly; cancelling every request (503) instead of draining",
                  launcher_pid_);
    group_health_->fail(GroupFailure::now(
        fmt::format("the launcher (pid {}) is ending the job: a rank exited or mpirun was signalled", launcher_pid_),
        "world"));
    group_failed_ = true;  // a further signal exits at once
    return cancel("the launcher is ending the job");
  }
  if (++n_signals_ > 1) return cancel("second signal");
  EngineStats stats = engine_.stats();
  spdlog::info("{}: draining (no new requests; {} running, {} waiting finish first, for {} s at most; signal again "
               "to cancel them)",
               signal_name(signal), stats.n_running, stats.n_waiting, drain_timeout_s_);
  server_.begin_drain();
  engine_.stop(true);
  if (drain_timeout_s_ <= 0) return cancel("--shutdown-timeout 0");
  drain_timer_.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(drain_timeout_s_)));
  drain_timer_.async_wait([this](const beast::error_code& ec) {
    if (!ec && !finished_) cancel("--shutdown-timeout reached");
  });
}

void ShutdownController::cancel(const char* why) {
  if (server_.state() >= ServerState::state_cancelling) return;
  spdlog::warn("{}: cancelling in-flight requests", why);
  server_.cancel_requests();  // each ends its response with an error event or a 503
  engine_.stop(false);
}

void ShutdownController::engine_finished(bool engine_failed) {
  net::post(signals_.get_executor(), [this, engine_failed] { finish(engine_failed); });
}

void ShutdownController::group_failed(double linger_s) {
  net::post(signals_.get_executor(), [this, linger_s] {
    group_failed_ = true;
    drain_timer_.cancel();  // a drain in progress has nothing left to wait for
    drain_timer_.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(linger_s)));
    drain_timer_.async_wait([this](const beast::error_code& ec) {
      if (!ec) finish(true);
    });
  });
}

// On the strand.
void ShutdownController::finish(bool engine_failed) {
  if (finished_) return;
  finished_ = true;
  beast::error_code ignored;
  signals_.cancel(ignored);
  drain_timer_.cancel();
  if (engine_failed) server_.close_all();
  else server_.stop();
}

}  // namespace dsi::server
