#pragma once
// Makes the model's device collectives (device_collectives.h) for the transport chosen at
// startup (collective_choice.h): the one place that knows whether this build has NCCL, so that
// nothing else needs its headers or a compile flag (target dsi_parallel_device; the engine's
// ModelRunner calls it once its backend exists).
#include <memory>

#include "parallel/collective_choice.h"
#include "parallel/device_collectives.h"
#include "parallel/timed_communicator.h"

namespace dsi {

// Whether this build has the NCCL device collectives (CUDA builds where CMake found NCCL).
bool nccl_collectives_built();

// The collectives over `host`'s ranks with `mode` (nccl or host; auto is resolved before, by
// choose_device_collectives). nccl is collective over `host` (NCCL's init) and its calls are
// timed on `clock`; a group of one gets the host-staged ones, which move nothing. `backend`
// must outlive the result. An Error for nccl in a build without it.
std::shared_ptr<DeviceCollectives> make_device_collectives(DeviceCollectivesMode mode,
                                                           std::shared_ptr<Communicator> host, Backend& backend,
                                                           std::shared_ptr<CommunicationClock> clock);

}  // namespace dsi
