#pragma once
// Where tests find their data and the dsinfer binary (set by CTest; see cmake/dsi.cmake).
#include <cstdlib>
#include <filesystem>
#include <string>
#include <unistd.h>

namespace dsi::test {

// The build compiles in the source tree and the binary folder (dsi_test in cmake/dsi.cmake);
// DSINFER_DATA and DSINFER_BIN override them.
inline std::string source_dir() { return DSINFER_SOURCE_DIR; }
inline std::string data_dir() {
  const char* d = std::getenv("DSINFER_DATA");
  return d ? d : DSINFER_SOURCE_DIR "/tests/data";
}
inline std::string data_path(const std::string& rel) { return data_dir() + "/" + rel; }
inline std::string dsinfer_bin() {
  const char* b = std::getenv("DSINFER_BIN");
  return b ? b : DSINFER_BIN_DIR "/dsinfer";
}

// A fresh temporary folder, removed when the object dies.
class TempDir {
 public:
  TempDir() {
    auto base = std::filesystem::temp_directory_path();
    for (int i = 0;; ++i) {
      path_ = base / ("dsinfer-test-" + std::to_string(::getpid()) + "-" + std::to_string(i));
      if (std::filesystem::create_directory(path_)) break;
    }
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace dsi::test
