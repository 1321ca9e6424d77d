#pragma once
// Moves a model's weights into backend memory, once at load.
#include "backend/backend.h"
#include "model/weights.h"

namespace dsi {

// Uploads every weight of `host` (loaded or dummy) to `backend` and returns the backend-memory
// views; routed experts are uploaded per projection and layer (upload_experts, stacked on a
// GPU). Shows progress and logs the time and rate. The host storage is released unless the
// backend keeps it (the CPU backend computes on it in place).
ModelWeights upload_weights(Backend& backend, ModelWeights host);

}  // namespace dsi
