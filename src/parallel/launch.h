#pragma once
// Which rank of how many this process is, from the environment a launcher sets: OpenMPI's
// mpirun (OMPI_COMM_WORLD_RANK/SIZE), MPICH/Hydra and Intel MPI (PMI_RANK/PMI_SIZE), Slurm's
// srun (SLURM_PROCID/SLURM_NTASKS). No variable: a world of one, and MPI is never initialised.
#include <string>

namespace dsi {

struct LaunchInfo {
  int rank = 0;
  int size = 1;
  std::string launcher = "none";  // "openmpi", "pmi", "slurm", "none"
};

// Reads the environment; a malformed or inconsistent value is an Error naming the variable.
LaunchInfo detect_launch();

}  // namespace dsi
