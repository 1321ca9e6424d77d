#pragma once
// Starts the process's place in a parallel run: reads the launcher's rank variables
// (parallel/launch.h), initialises MPI only when there is more than one rank, builds the
// world and TP communicators and the ParallelContext. One per process (it owns the MPI
// session); the commands create it first and pass its context down.
#include <memory>
#include <string>

#include "parallel/parallel_context.h"

namespace dsi {

class MpiSession;

// An Error that rank 0 has already printed: the other ranks exit non-zero without repeating it.
class ReportedByRootError : public Error {
 public:
  using Error::Error;
};

class ParallelRuntime {
 public:
  // Errors in the layout are printed by rank 0 only (the others throw ReportedByRootError).
  explicit ParallelRuntime(const ParallelOptions& options);
  ~ParallelRuntime();
  ParallelRuntime(const ParallelRuntime&) = delete;
  ParallelRuntime& operator=(const ParallelRuntime&) = delete;

  const ParallelContext& context() const { return ctx_; }
  // Runs fn, the part of a command where all ranks work together: an error on one rank is
  // printed with its rank and ends every rank (MPI_Abort, a non-zero exit for the launcher)
  // instead of leaving the others waiting in a collective. A world of one just runs fn.
  template <class Fn>
  void run(Fn&& fn) {
    if (!session_) return fn();
    try {
      fn();
    } catch (const std::exception& e) {
      abort_run(e.what());
    }
  }
  [[noreturn]] void abort_run(const char* what);

 private:
  std::unique_ptr<MpiSession> session_;
  ParallelContext ctx_;
};

// After a startup step that every rank runs (loading, checks): if it failed on any rank,
// every rank throws ReportedByRootError once the error has been printed: by rank 0 when it
// failed there (the same check fails the same way everywhere), else by the ranks it failed
// on, with their rank. Collective over `world` (null: a world of one, nothing to agree on).
void agree_on_startup(Communicator* world, const std::string& error);

// Runs fn on every rank and agrees on its outcome (agree_on_startup). In a world of one the
// error is simply rethrown.
template <class Fn>
void checked_on_every_rank(const ParallelContext& p, Fn&& fn) {
  std::string error;
  try {
    fn();
  } catch (const Error& e) {
    if (!p.world) throw;
    error = e.what();
  }
  agree_on_startup(p.world.get(), error);
}

}  // namespace dsi
