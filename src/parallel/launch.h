#pragma once
// Which rank of how many this process is, from the environment a launcher sets: OpenMPI's
// mpirun (OMPI_COMM_WORLD_RANK/SIZE), MPICH/Hydra and Intel MPI (PMI_RANK/PMI_SIZE), Slurm's
// srun (SLURM_PROCID/SLURM_NTASKS). No variable: a world of one, and MPI is never initialised.
#include <string>

namespace dsi {

struct LaunchInfo {
  int rank = 0;
  int size = 1;
  // This process's rank among those of its node (OMPI_COMM_WORLD_LOCAL_RANK, MPI_LOCALRANKID,
  // SLURM_LOCALID); the world rank where the launcher does not say (one node).
  int local_rank = 0;
  std::string launcher = "none";  // "openmpi", "pmi", "slurm", "none"
};

// Reads the environment; a malformed or inconsistent value is an Error naming the variable.
LaunchInfo detect_launch();

}  // namespace dsi
