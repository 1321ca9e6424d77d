#pragma once
// The byte-level alphabet of GPT-2 style BPE: every byte maps to one printable code point
// (printable Latin-1 bytes map to themselves, the other 68 bytes to U+0100 upwards in byte
// order), so that any byte string becomes a string of visible characters and back.
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace dsi::byte_level {

char32_t byte_to_char(uint8_t b);

// The byte a code point stands for, or -1 when it is not in the alphabet.
int char_to_byte(char32_t c);

// UTF-8 of the alphabet character of each byte of `bytes`, appended to out.
void append_encoded(std::string& out, std::string_view bytes);

// The bytes a token of the alphabet stands for, appended to out. Returns false (appending
// nothing) when some character is outside the alphabet; the reference decoder then keeps the
// token's own UTF-8 bytes.
bool append_decoded(std::string& out, std::string_view token);

}  // namespace dsi::byte_level
