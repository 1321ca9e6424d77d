// A fake NVML for the topo tests: the entry points dsinfer's loader binds, answering from the
// JSON file named by $FAKE_NVML_CONFIG (read at every nvmlInit_v2):
//   {"driver": "550.54.15", "nvml": "12.550.54.15", "cuda": 12040,
//    "gpus": [{"name", "memory_gib", "cc": [9, 0], "sm_mhz", "mem_mhz", "bus", "numa", "cpus": [..]}],
//    "links": [["X", "NV4", "PIX", ...], ...],   // as nvidia-smi topo -m prints them
//    "switch_links": [18, ...]}                   // NVLinks to an NVSwitch, per GPU (optional)
// Built as a shared library and loaded through the real dlopen path.
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace {

struct FakeGpu {
  std::string name, bus;
  unsigned long long memory = 0;
  int cc_major = 0, cc_minor = 0;
  unsigned sm_mhz = 0, mem_mhz = 0;
  int numa = -1;
  std::vector<int> cpus;
  std::vector<std::string> nvlink_remote;  // far end of each active link
};

struct Fake {
  std::string driver, nvml;
  int cuda = 0;
  std::vector<FakeGpu> gpus;
  std::vector<std::vector<std::string>> links;
} fake;

int level_of(const std::string& link) {
  if (link == "PIX") return 10;
  if (link == "PXB") return 20;
  if (link == "PHB") return 30;
  if (link == "NODE") return 40;
  return 50;
}

int copy(char* out, unsigned n, const std::string& s) {
  if (s.size() + 1 > n) return 7;  // NVML_ERROR_INSUFFICIENT_SIZE
  std::memcpy(out, s.c_str(), s.size() + 1);
  return 0;
}

FakeGpu* gpu(void* device) { return static_cast<FakeGpu*>(device); }

struct PciInfo {
  char busIdLegacy[16];
  unsigned domain, bus, device, pciDeviceId, pciSubSystemId;
  char busId[32];
};

}  // namespace

extern "C" {

int nvmlInit_v2() {
  const char* path = std::getenv("FAKE_NVML_CONFIG");
  if (!path) return 9;  // NVML_ERROR_DRIVER_NOT_LOADED
  std::ifstream in(path);
  if (!in) return 9;
  nlohmann::json j = nlohmann::json::parse(in);
  fake = Fake{};
  fake.driver = j.value("driver", "");
  fake.nvml = j.value("nvml", "");
  fake.cuda = j.value("cuda", 0);
  for (const auto& g : j["gpus"]) {
    FakeGpu f;
    f.name = g["name"];
    f.bus = g["bus"];
    f.memory = (unsigned long long)(g["memory_gib"].get<double>() * double(1ull << 30));
    f.cc_major = g["cc"][0];
    f.cc_minor = g["cc"][1];
    f.sm_mhz = g.value("sm_mhz", 0u);
    f.mem_mhz = g.value("mem_mhz", 0u);
    f.numa = g.value("numa", -1);
    f.cpus = g.value("cpus", std::vector<int>{});
    fake.gpus.push_back(f);
  }
  fake.links = j["links"].get<std::vector<std::vector<std::string>>>();
  for (size_t i = 0; i < fake.gpus.size(); ++i) {
    for (size_t k = 0; k < fake.gpus.size(); ++k)
      if (fake.links[i][k].rfind("NV", 0) == 0)
        for (int n = std::stoi(fake.links[i][k].substr(2)); n > 0; --n) fake.gpus[i].nvlink_remote.push_back(fake.gpus[k].bus);
    if (j.contains("switch_links"))
      for (int n = j["switch_links"][i]; n > 0; --n) fake.gpus[i].nvlink_remote.push_back("00000000:FF:00.0");
  }
  return 0;
}
int nvmlShutdown() { return 0; }
const char* nvmlErrorString(int) { return "fake NVML error"; }
int nvmlSystemGetDriverVersion(char* out, unsigned n) { return copy(out, n, fake.driver); }
int nvmlSystemGetNVMLVersion(char* out, unsigned n) { return copy(out, n, fake.nvml); }
int nvmlSystemGetCudaDriverVersion(int* v) {
  *v = fake.cuda;
  return 0;
}
int nvmlDeviceGetCount_v2(unsigned* n) {
  *n = unsigned(fake.gpus.size());
  return 0;
}
int nvmlDeviceGetHandleByIndex_v2(unsigned i, void** device) {
  if (i >= fake.gpus.size()) return 2;  // NVML_ERROR_INVALID_ARGUMENT
  *device = &fake.gpus[i];
  return 0;
}
int nvmlDeviceGetName(void* d, char* out, unsigned n) { return copy(out, n, gpu(d)->name); }
int nvmlDeviceGetUUID(void* d, char* out, unsigned n) { return copy(out, n, "GPU-fake-" + gpu(d)->bus); }
int nvmlDeviceGetMemoryInfo(void* d, unsigned long long* mem) {
  mem[0] = gpu(d)->memory;
  mem[1] = gpu(d)->memory / 2;
  mem[2] = gpu(d)->memory - mem[1];
  return 0;
}
int nvmlDeviceGetCudaComputeCapability(void* d, int* major, int* minor) {
  *major = gpu(d)->cc_major;
  *minor = gpu(d)->cc_minor;
  return 0;
}
int nvmlDeviceGetMaxClockInfo(void* d, int type, unsigned* mhz) {
  *mhz = type == 1 ? gpu(d)->sm_mhz : gpu(d)->mem_mhz;
  return 0;
}
int nvmlDeviceGetPciInfo_v3(void* d, PciInfo* pci) {
  std::memset(pci, 0, sizeof *pci);
  std::strncpy(pci->busId, gpu(d)->bus.c_str(), sizeof pci->busId - 1);
  return 0;
}
int nvmlDeviceGetTopologyCommonAncestor(void* a, void* b, int* level) {
  const size_t i = size_t(gpu(a) - fake.gpus.data()), k = size_t(gpu(b) - fake.gpus.data());
  *level = level_of(fake.links[i][k]);
  return 0;
}
int nvmlDeviceGetNvLinkState(void* d, unsigned link, int* active) {
  *active = link < gpu(d)->nvlink_remote.size();
  return 0;
}
int nvmlDeviceGetNvLinkRemotePciInfo_v2(void* d, unsigned link, PciInfo* pci) {
  if (link >= gpu(d)->nvlink_remote.size()) return 3;  // NVML_ERROR_NOT_SUPPORTED
  std::memset(pci, 0, sizeof *pci);
  std::strncpy(pci->busId, gpu(d)->nvlink_remote[link].c_str(), sizeof pci->busId - 1);
  return 0;
}
int nvmlDeviceGetCpuAffinity(void* d, unsigned words, unsigned long* set) {
  std::memset(set, 0, words * sizeof(unsigned long));
  for (int c : gpu(d)->cpus) set[unsigned(c) / (8 * sizeof(unsigned long))] |= 1UL << (unsigned(c) % (8 * sizeof(unsigned long)));
  return 0;
}
int nvmlDeviceGetNumaNodeId(void* d, unsigned* node) {
  if (gpu(d)->numa < 0) return 3;
  *node = unsigned(gpu(d)->numa);
  return 0;
}

}  // extern "C"
