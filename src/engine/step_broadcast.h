#pragma once
// The rank protocol (docs/design/parallel.md): rank 0 plans every step and broadcasts its
// plan over the world communicator: one ForwardBatch, or under data-parallel attention one
// per DP rank (possibly empty), every rank running its own. Every other rank waits for it and
// runs the forward; rank 0 samples (under DP the other ranks' logits rows come back to it).
// A stop message ends the workers.
#include <span>
#include <vector>

#include "backend/step_context.h"
#include "parallel/communicator.h"

namespace dsi {

class ModelRunner;

// Rank 0: sends the step's batches (one per DP rank; or, with stop, the end of the run) to
// every rank.
void broadcast_step(Communicator& world, std::span<const ForwardBatch> batches, bool stop = false);
// Other ranks: the next step's batches; false at stop. Waits without a timeout for the step to
// begin (rank 0 may be idle for hours in serve); its payload then has the communicator's timeout.
bool receive_step(Communicator& world, std::vector<ForwardBatch>& batches);

// Other ranks: runs every step rank 0 broadcasts until it says stop.
void run_worker(ModelRunner& runner);

}  // namespace dsi
