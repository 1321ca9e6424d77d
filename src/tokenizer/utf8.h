#pragma once
// UTF-8 helpers for the tokenizer. Decoding arbitrary bytes follows Rust's
// String::from_utf8_lossy, which the reference decoder uses: one U+FFFD per maximal
// ill-formed subpart (Unicode 15, section 3.9, "U+FFFD Substitution of Maximal Subparts").
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace dsi::utf8 {

inline constexpr char32_t replacement_char = 0xFFFD;

// How a UTF-8 sequence starting at some byte turned out.
struct SequenceScan {
  size_t length = 0;       // bytes consumed: the whole character, or the maximal subpart
  bool complete = false;   // a well-formed character
  bool truncated = false;  // ill-formed only because the input ended (more bytes could fix it)
};

// Scans the sequence at s[pos] (pos < s.size()).
SequenceScan scan_sequence(std::string_view s, size_t pos);

// Decodes the character at s[pos] of well-formed UTF-8 and advances pos past it.
char32_t decode(std::string_view s, size_t& pos);

void append(std::string& out, char32_t cp);

// Offset of the first byte that does not start a well-formed character (s.size() if none).
size_t valid_prefix_length(std::string_view s);
inline bool is_valid(std::string_view s) { return valid_prefix_length(s) == s.size(); }

// Appends bytes as text, replacing each maximal ill-formed subpart with U+FFFD.
void append_lossy(std::string& out, std::string_view bytes);
std::string lossy(std::string_view bytes);

// Length of a trailing sequence that is ill-formed only because it is cut short (0 to 3
// bytes): the bytes a streaming decoder must hold back until the next ones arrive.
size_t truncated_tail_length(std::string_view s);

// Number of bytes of the character whose first byte is b (1 for continuation or invalid bytes).
inline size_t lead_length(uint8_t b) {
  if (b < 0xC0) return 1;
  if (b < 0xE0) return 2;
  if (b < 0xF0) return 3;
  return 4;
}

}  // namespace dsi::utf8
