#pragma once
// What moves `dsinfer serve` through HttpServer's shutdown states (http_server.h): SIGINT /
// SIGTERM / SIGUSR1 and the drain's time limit. (SIGUSR1 because mpirun forwards it to every
// rank, where SIGTERM to mpirun ends the ranks at once: docs/multi-rank.md.) The first signal drains (no new work; what is in
// progress finishes); a second signal, or --shutdown-timeout seconds of draining, cancels what
// is still in progress, each request ending with an error event or a 503. When the engine has
// finished, the server stops.
// Under OpenMPI, a SIGTERM from rank 0's parent (mpirun or orted) is the launcher tearing the
// job down (a rank exited, or mpirun itself was signalled) with SIGKILL about a second behind:
// no time to drain, so rank 0 marks the group failed (/health 503) and cancels every request
// at once (each gets its 503) instead of waiting for steps that cannot finish.
//
// Threads: the handlers run on one strand of the io_context; engine_finished from any thread.
#include "core/beast.h"
#include "engine/engine.h"
#include "server/group_health.h"
#include "server/http_server.h"

namespace dsi::server {

class ShutdownController {
 public:
  // drain_timeout_s: how long a drain may take before it cancels (0: cancel at once).
  // launcher_pid: the process whose SIGTERM ends the job (0: none); group_health: where that
  // failure is reported (required with a launcher_pid).
  ShutdownController(net::io_context& ioc, Engine& engine, HttpServer& server, double drain_timeout_s,
                     int launcher_pid = 0, GroupHealth* group_health = nullptr);
  ~ShutdownController();
  ShutdownController(const ShutdownController&) = delete;
  ShutdownController& operator=(const ShutdownController&) = delete;

  // The engine's run() has returned: stop the server (close_all when the engine failed) and
  // stop waiting for signals and the drain's time limit, so that the io_context can run out
  // of work.
  void engine_finished(bool engine_failed);
  // A rank of the parallel group failed and the engine stopped: keep the server up for
  // `linger_s` seconds (GET /health answers 503 naming the failure, new work 503) so that
  // health checks see it, then close every connection as for a failed engine. A signal
  // during that time ends it at once.
  void group_failed(double linger_s);

 private:
  void finish(bool engine_failed);
  void wait();
  void on_signal(int signal);
  void cancel(const char* why);

  net::signal_set signals_;
  net::steady_timer drain_timer_;
  Engine& engine_;
  HttpServer& server_;
  double drain_timeout_s_;
  int launcher_pid_;
  GroupHealth* group_health_;
  int n_signals_ = 0;
  bool finished_ = false;
  bool group_failed_ = false;
};

}  // namespace dsi::server
