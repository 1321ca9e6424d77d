#pragma once
// The rank protocol (docs/design/parallel.md): rank 0 plans every step and broadcasts its
// ForwardBatch over the world communicator; every other rank waits for it, runs the same
// forward and discards the logits (rank 0 samples). A stop message ends the workers.
#include "backend/step_context.h"
#include "parallel/communicator.h"

namespace dsi {

class ModelRunner;

// Rank 0: sends `batch` (or, with stop, the end of the run) to every rank.
void broadcast_step(Communicator& world, const ForwardBatch& batch, bool stop = false);
// Other ranks: the next step; false at stop. Waits without a timeout for the step to begin
// (rank 0 may be idle for hours in serve); its payload then has the communicator's timeout.
bool receive_step(Communicator& world, ForwardBatch& batch);

// Other ranks: runs every step rank 0 broadcasts until it says stop.
void run_worker(ModelRunner& runner);

}  // namespace dsi
