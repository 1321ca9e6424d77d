#include "tokenizer/utf8.h"

namespace dsi::utf8 {
namespace {

// Valid range of the second byte for a lead byte (Unicode Table 3-7); later bytes are 80..BF.
struct LeadInfo {
  uint8_t n_bytes;  // 0: never a lead byte
  uint8_t second_lo;
  uint8_t second_hi;
};

constexpr LeadInfo lead_info(uint8_t b) {
  if (b < 0x80) return {1, 0, 0};
  if (b < 0xC2) return {0, 0, 0};
  if (b < 0xE0) return {2, 0x80, 0xBF};
  if (b == 0xE0) return {3, 0xA0, 0xBF};
  if (b == 0xED) return {3, 0x80, 0x9F};  // no surrogates
  if (b < 0xF0) return {3, 0x80, 0xBF};
  if (b == 0xF0) return {4, 0x90, 0xBF};
  if (b < 0xF4) return {4, 0x80, 0xBF};
  if (b == 0xF4) return {4, 0x80, 0x8F};  // nothing above U+10FFFF
  return {0, 0, 0};
}

}  // namespace

SequenceScan scan_sequence(std::string_view s, size_t pos) {
  auto b0 = uint8_t(s[pos]);
  LeadInfo info = lead_info(b0);
  if (info.n_bytes == 1) return {1, true, false};
  if (info.n_bytes == 0) return {1, false, false};
  size_t n = 1;
  for (; n < info.n_bytes; ++n) {
    if (pos + n >= s.size()) return {n, false, true};
    auto b = uint8_t(s[pos + n]);
    uint8_t lo = n == 1 ? info.second_lo : uint8_t(0x80);
    uint8_t hi = n == 1 ? info.second_hi : uint8_t(0xBF);
    if (b < lo || b > hi) return {n, false, false};
  }
  return {n, true, false};
}

char32_t decode(std::string_view s, size_t& pos) {
  auto b0 = uint8_t(s[pos]);
  if (b0 < 0x80) {
    ++pos;
    return b0;
  }
  size_t n = lead_length(b0);
  char32_t cp = b0 & (0x7F >> n);
  for (size_t i = 1; i < n && pos + i < s.size(); ++i) cp = (cp << 6) | (uint8_t(s[pos + i]) & 0x3F);
  pos += n;
  return cp;
}

void append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

size_t valid_prefix_length(std::string_view s) {
  size_t pos = 0;
  while (pos < s.size()) {
    if (uint8_t(s[pos]) < 0x80) {
      ++pos;
      continue;
    }
    SequenceScan scan = scan_sequence(s, pos);
    if (!scan.complete) return pos;
    pos += scan.length;
  }
  return pos;
}

void append_lossy(std::string& out, std::string_view bytes) {
  size_t pos = 0;
  while (pos < bytes.size()) {
    size_t run = pos;
    while (run < bytes.size() && uint8_t(bytes[run]) < 0x80) ++run;
    out.append(bytes.substr(pos, run - pos));
    pos = run;
    if (pos == bytes.size()) break;
    SequenceScan scan = scan_sequence(bytes, pos);
    if (scan.complete)
      out.append(bytes.substr(pos, scan.length));
    else
      append(out, replacement_char);
    pos += scan.length;
  }
}

std::string lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  append_lossy(out, bytes);
  return out;
}

size_t truncated_tail_length(std::string_view s) {
  // A lead byte always starts a new sequence in a left-to-right scan (earlier sequences only
  // consume continuation bytes), so the last lead byte within 3 bytes of the end decides.
  size_t n = s.size();
  for (size_t k = 1; k <= 3 && k <= n; ++k) {
    auto b = uint8_t(s[n - k]);
    if (b >= 0x80 && b < 0xC0) continue;  // continuation byte: look further back
    SequenceScan scan = scan_sequence(s, n - k);
    return scan.truncated && scan.length == k ? k : 0;
  }
  return 0;
}

}  // namespace dsi::utf8
