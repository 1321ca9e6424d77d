#include "parallel/device_collectives_factory.h"

#include "core/error.h"

#ifdef DSINFER_HAVE_NCCL
#include "parallel/nccl_collectives.h"
#endif

namespace dsi {

bool nccl_collectives_built() {
#ifdef DSINFER_HAVE_NCCL
  return true;
#else
  return false;
#endif
}

std::shared_ptr<DeviceCollectives> make_device_collectives(DeviceCollectivesMode mode,
                                                           std::shared_ptr<Communicator> host, Backend& backend,
                                                           std::shared_ptr<CommunicationClock> clock) {
  if (!host) fail("make_device_collectives: needs a host communicator");
  if (mode == DeviceCollectivesMode::device_collectives_auto)
    fail("make_device_collectives: --device-collectives auto must be resolved first (choose_device_collectives)");
  if (mode == DeviceCollectivesMode::device_collectives_host || host->size() == 1)
    return std::make_shared<HostStagedCollectives>(std::move(host), backend);
#ifdef DSINFER_HAVE_NCCL
  return std::make_shared<NcclCollectives>(std::move(host), backend, std::move(clock));
#else
  (void)clock;
  fail("--device-collectives nccl: this build has no NCCL");
#endif
}

}  // namespace dsi
