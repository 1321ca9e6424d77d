#include "model/safetensors.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <limits>

#include "core/error.h"
#include "core/json.h"

namespace dsi {

namespace {

// Headers of real checkpoints are a few hundred kilobytes; anything near this is corrupt.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

uint64_t checked_numel(const std::vector<int64_t>& shape, const std::string& where) {
  uint64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) fail("{}: negative dimension in shape", where);
    if (d != 0 && n > std::numeric_limits<uint64_t>::max() / uint64_t(d)) fail("{}: shape overflows", where);
    n *= uint64_t(d);
  }
  return n;
}

}  // namespace

int64_t SafetensorsEntry::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : file_(path) {
  auto bytes = file_.bytes();
  if (bytes.size() < 8) fail("{}: truncated safetensors file ({} bytes, no header)", path, bytes.size());
  uint64_t header_size = 0;
  std::memcpy(&header_size, bytes.data(), 8);  // little-endian, as on every supported host
  if (header_size > kMaxHeaderBytes || header_size > bytes.size() - 8)
    fail("{}: header size {} exceeds the file ({} bytes): truncated or not a safetensors file", path,
         header_size, bytes.size());
  data_size_ = bytes.size() - 8 - header_size;
  const unsigned char* data = bytes.data() + 8 + header_size;

  std::string_view header(reinterpret_cast<const char*>(bytes.data() + 8), header_size);
  Json j = parse_json(header, path + " header");
  if (!j.is_object()) fail("{}: header is not a JSON object", path);

  struct Range { uint64_t begin, end; const std::string* name; };
  std::vector<Range> ranges;
  for (auto& [name, v] : j.items()) {
    if (name == "__metadata__") continue;
    std::string where = path + ": tensor " + name;
    if (!v.is_object()) fail("{}: entry is not an object", where);
    auto dtype_str = json_get<std::string>(v, "dtype", where);
    auto dtype = dtype_from_safetensors(dtype_str);
    if (!dtype) fail("{}: unsupported dtype {}", where, dtype_str);
    auto shape_it = v.find("shape");
    if (shape_it == v.end() || !shape_it->is_array()) fail("{}: missing or malformed shape", where);
    SafetensorsEntry e{*dtype, {}, 0, 0, nullptr};
    for (auto& d : *shape_it) {
      if (!d.is_number_integer()) fail("{}: shape {} is not a list of integers", where, shape_it->dump());
      e.shape.push_back(d.get<int64_t>());
    }
    auto off = v.find("data_offsets");
    if (off == v.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
        !(*off)[1].is_number_unsigned())
      fail("{}: missing or malformed data_offsets", where);
    e.begin = (*off)[0].get<uint64_t>();
    e.end = (*off)[1].get<uint64_t>();
    if (e.begin > e.end || e.end > data_size_)
      fail("{}: data_offsets [{}, {}] lie outside the data section ({} bytes): truncated or corrupt file", where,
           e.begin, e.end, data_size_);
    uint64_t numel = checked_numel(e.shape, where);
    uint64_t want = numel * dtype_size(*dtype);
    if (numel != 0 && want / numel != dtype_size(*dtype)) fail("{}: size overflows", where);
    if (e.end - e.begin != want)
      fail("{}: data_offsets span {} bytes but {} {} needs {}", where, e.end - e.begin, dtype_str,
           shape_str(e.shape), want);
    e.data = data + e.begin;
    auto [it, inserted] = entries_.emplace(name, std::move(e));
    ranges.push_back({it->second.begin, it->second.end, &it->first});
  }
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].begin < ranges[i - 1].end)
      fail("{}: tensors {} and {} overlap (bytes [{}, {}) and [{}, {}))", path, *ranges[i - 1].name,
           *ranges[i].name, ranges[i - 1].begin, ranges[i - 1].end, ranges[i].begin, ranges[i].end);
}

const SafetensorsEntry* SafetensorsFile::find(const std::string& name) const {
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : &it->second;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

void write_safetensors(const std::string& path, const std::vector<SafetensorsTensorOut>& tensors) {
  Json header = Json::object();
  uint64_t offset = 0;
  for (auto& t : tensors) {
    uint64_t n = checked_numel(t.shape, t.name) * dtype_size(t.dtype);
    header[t.name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  std::string h = header.dump();
  h.resize((h.size() + 7) / 8 * 8, ' ');  // keep the data section 8-byte aligned
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) fail("cannot write {}", path);
  uint64_t hs = h.size();
  out.write(reinterpret_cast<const char*>(&hs), 8);
  out.write(h.data(), std::streamsize(h.size()));
  for (auto& t : tensors)
    out.write(static_cast<const char*>(t.data),
              std::streamsize(checked_numel(t.shape, t.name) * dtype_size(t.dtype)));
  if (!out.flush()) fail("cannot write {}", path);
}

}  // namespace dsi
