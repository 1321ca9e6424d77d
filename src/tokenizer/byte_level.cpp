#include "tokenizer/byte_level.h"

#include "tokenizer/utf8.h"

namespace dsi::byte_level {
namespace {

constexpr bool is_printable_byte(int b) {
  return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

constexpr std::array<char32_t, 256> make_byte_to_char() {
  std::array<char32_t, 256> table{};
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) table[size_t(b)] = is_printable_byte(b) ? char32_t(b) : next++;
  return table;
}

constexpr std::array<char32_t, 256> byte_chars = make_byte_to_char();

// The alphabet lies below U+0144 (256 + 68 remapped bytes).
constexpr size_t n_alphabet_code_points = 256 + 68;

constexpr std::array<int16_t, n_alphabet_code_points> make_char_to_byte() {
  std::array<int16_t, n_alphabet_code_points> table{};
  for (auto& v : table) v = -1;
  for (int b = 0; b < 256; ++b) table[byte_chars[size_t(b)]] = int16_t(b);
  return table;
}

constexpr std::array<int16_t, n_alphabet_code_points> char_bytes = make_char_to_byte();

// Two-byte UTF-8 of each alphabet character, precomputed for the encoder's hot loop.
struct EncodedByte {
  char bytes[2];
  uint8_t n;
};

constexpr std::array<EncodedByte, 256> make_encoded() {
  std::array<EncodedByte, 256> table{};
  for (int b = 0; b < 256; ++b) {
    char32_t c = byte_chars[size_t(b)];
    if (c < 0x80) {
      table[size_t(b)] = {{char(c), 0}, 1};
    } else {
      table[size_t(b)] = {{char(0xC0 | (c >> 6)), char(0x80 | (c & 0x3F))}, 2};
    }
  }
  return table;
}

constexpr std::array<EncodedByte, 256> encoded_bytes = make_encoded();

}  // namespace

char32_t byte_to_char(uint8_t b) { return byte_chars[b]; }

int char_to_byte(char32_t c) { return c < n_alphabet_code_points ? char_bytes[c] : -1; }

void append_encoded(std::string& out, std::string_view bytes) {
  for (char ch : bytes) {
    const EncodedByte& e = encoded_bytes[uint8_t(ch)];
    out.append(e.bytes, e.n);
  }
}

bool append_decoded(std::string& out, std::string_view token) {
  size_t start = out.size();
  size_t pos = 0;
  while (pos < token.size()) {
    char32_t c = utf8::decode(token, pos);
    int b = char_to_byte(c);
    if (b < 0) {
      out.resize(start);
      return false;
    }
    out += char(b);
  }
  return true;
}

}  // namespace dsi::byte_level
