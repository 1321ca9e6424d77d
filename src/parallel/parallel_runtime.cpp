#include "parallel/parallel_runtime.h"

#include <cstdio>
#include <vector>

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
  // Every collective of the run is timed (the step's communication phase); splits inherit it.
  auto clock = std::make_shared<CommunicationClock>();
  std::shared_ptr<Communicator> world = std::make_shared<TimedCommunicator>(MpiCommunicator::world(), clock);
  world->set_timeout(timeout);
  if (world->size() != launch.size || world->rank() != launch.rank)
    fail("the launcher ({}) says rank {} of {}, MPI says rank {} of {}", launch.launcher, launch.rank, launch.size,
         world->rank(), world->size());
  const bool root = world->rank() == 0;
  // One voice: the other ranks log only warnings and errors unless asked for more.
  if (!root && spdlog::get_level() == spdlog::level::info) spdlog::set_level(spdlog::level::warn);
  std::string error;
  try {
    ctx_ = make_parallel_layout(o, world->rank(), world->size());
  } catch (const Error& e) {
    error = e.what();
  }
  agree_on_startup(world.get(), error);
  ctx_.world = world;
  ctx_.comm_clock = clock;
  ctx_.launcher = launch.launcher;
  ctx_.local_rank = launch.local_rank;
  ctx_.tp = world->split(ctx_.world_rank / ctx_.tp_size, ctx_.tp_rank, "tp");
  if (root)
    spdlog::info("parallel: {} ranks ({}), tensor parallel {}, expert parallel {} (expert width split {}), data "
                 "parallel {}, collective timeout {:.1f} s",
                 ctx_.world_size, launch.launcher, ctx_.tp_size, ctx_.ep_size, ctx_.expert_tp_size, ctx_.dp_size,
                 o.collective_timeout_s);
}

void agree_on_startup(Communicator* world, const std::string& error) {
  if (!world) {
    if (!error.empty()) throw Error(error);
    return;
  }
  const bool root = world->rank() == 0;
  std::vector<float> failed = {error.empty() ? 0.0f : 1.0f, root && !error.empty() ? 1.0f : 0.0f};
  world->all_reduce_sum(failed);
  if (failed[0] == 0) return;
  if (root && !error.empty()) std::fprintf(stderr, "error: %s\n", error.c_str());
  else if (!error.empty() && failed[1] == 0) std::fprintf(stderr, "error: rank %d: %s\n", world->rank(), error.c_str());
  std::fflush(stderr);
  // No rank leaves before every message is out: mpirun ends the job when the first one exits.
  world->barrier();
  throw ReportedByRootError(error.empty() ? "a startup check failed on another rank" : error);
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
