#include "parallel/launch.h"

#include <cstdlib>
#include <string>

#include "core/error.h"

namespace dsi {

namespace {

bool read_int(const char* name, int& out) {
  const char* v = std::getenv(name);
  if (!v) return false;
  std::string s(v);
  if (s.empty() || s.size() > 9 || s.find_first_not_of("0123456789") != std::string::npos)
    fail("environment variable {}='{}' is not a non-negative integer", name, s);
  out = std::stoi(s);
  return true;
}

}  // namespace

LaunchInfo detect_launch() {
  struct Source {
    const char *rank, *size, *local_rank, *launcher;
  };
  // OpenMPI first: under `srun --mpi=pmix mpirun`-style nesting its values are the MPI ranks.
  static const Source sources[] = {{"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "openmpi"},
                                   {"PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "pmi"},
                                   {"SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "slurm"}};
  for (const auto& s : sources) {
    LaunchInfo info;
    bool has_rank = read_int(s.rank, info.rank), has_size = read_int(s.size, info.size);
    if (!has_rank && !has_size) continue;
    if (has_rank != has_size) fail("{} is set without {}: cannot tell this process's rank", has_rank ? s.rank : s.size,
                                   has_rank ? s.size : s.rank);
    if (info.size < 1 || info.rank >= info.size)
      fail("{}={} and {}={}: the rank must be below the world size", s.rank, info.rank, s.size, info.size);
    if (!read_int(s.local_rank, info.local_rank)) info.local_rank = info.rank;
    if (info.local_rank > info.rank)
      fail("{}={} exceeds {}={}: a node's ranks are some of the world's", s.local_rank, info.local_rank, s.rank,
           info.rank);
    info.launcher = s.launcher;
    return info;
  }
  return {};
}

}  // namespace dsi
