#include "parallel/parallel_runtime.h"

#include <cstdio>

#include "core/log.h"
#include "parallel/launch.h"
#include "parallel/mpi_communicator.h"

namespace dsi {

ParallelRuntime::ParallelRuntime(const ParallelOptions& o) {
  const LaunchInfo launch = detect_launch();
  const auto timeout = std::chrono::milliseconds(int64_t(o.collective_timeout_s * 1000));
  if (!(o.collective_timeout_s > 0)) fail("--collective-timeout {} must be positive", o.collective_timeout_s);
  if (launch.size == 1) {
    // A world of one: no MPI, no communicators.
    ctx_ = make_parallel_layout(o, 0, 1);
    return;
  }
  session_ = std::make_unique<MpiSession>();
  std::shared_ptr<Communicator> world = MpiCommunicator::world();
  world->set_timeout(timeout);
  if (world->size() != launch.size || world->rank() != launch.rank)
    fail("the launcher ({}) says rank {} of {}, MPI says rank {} of {}", launch.launcher, launch.rank, launch.size,
         world->rank(), world->size());
  const bool root = world->rank() == 0;
  // One voice: the other ranks log only warnings and errors unless asked for more.
  if (!root && spdlog::get_level() == spdlog::level::info) spdlog::set_level(spdlog::level::warn);
  try {
    ctx_ = make_parallel_layout(o, world->rank(), world->size());
  } catch (const Error& e) {
    if (root) throw;
    throw ReportedByRootError(e.what());
  }
  ctx_.world = world;
  ctx_.tp = world->split(ctx_.world_rank / ctx_.tp_size, ctx_.tp_rank, "tp");
  if (root)
    spdlog::info("parallel: {} ranks ({}), tensor parallel {}, expert parallel {} (expert width split {}), data "
                 "parallel {}, collective timeout {:.1f} s",
                 ctx_.world_size, launch.launcher, ctx_.tp_size, ctx_.ep_size, ctx_.expert_tp_size, ctx_.dp_size,
                 o.collective_timeout_s);
}

void ParallelRuntime::abort_run(const char* what) {
  std::fprintf(stderr, "error: rank %d of %d: %s\nerror: rank %d ends every rank of the job\n", ctx_.world_rank,
               ctx_.world_size, what, ctx_.world_rank);
  std::fflush(stderr);
  session_->abort_all(1);
}

ParallelRuntime::~ParallelRuntime() {
  ctx_.tp.reset();
  ctx_.world.reset();
}

}  // namespace dsi
