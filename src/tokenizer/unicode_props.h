#pragma once
// Character properties with the exact definitions the reference implementations use
// (from ICU's Unicode data), where PCRE2 has no direct query.
namespace dsi::unicode {

// The White_Space property: Rust's char::is_whitespace and regex \s.
bool is_white_space(char32_t c);

// Rust regex \w: Alphabetic, Mark, Decimal_Number, Connector_Punctuation, Join_Control.
bool is_word_char(char32_t c);

// Rust's char::is_numeric: general category Nd, Nl or No.
bool is_numeric(char32_t c);

// Python's str.isspace: category Zs, or bidirectional class WS, B or S.
bool is_python_space(char32_t c);

}  // namespace dsi::unicode
