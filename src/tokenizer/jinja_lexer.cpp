#include "tokenizer/jinja_lexer.h"

#include <array>

#include "core/error.h"
#include "tokenizer/unicode_props.h"
#include "tokenizer/utf8.h"

namespace dsi::jinja {
namespace {

bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_name_char(char c) { return is_name_start(c) || (c >= '0' && c <= '9'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Python's str.rstrip() / lstrip(): Unicode white space.
std::string_view rstrip(std::string_view s) {
  while (!s.empty()) {
    size_t start = s.size() - 1;
    while (start > 0 && (uint8_t(s[start]) & 0xC0) == 0x80) --start;
    size_t pos = start;
    if (!unicode::is_python_space(utf8::decode(s, pos))) break;
    s = s.substr(0, start);
  }
  return s;
}

size_t skip_space(std::string_view s, size_t pos) {
  while (pos < s.size()) {
    size_t next = pos;
    if (!unicode::is_python_space(utf8::decode(s, next))) break;
    pos = next;
  }
  return pos;
}

bool is_all_space(std::string_view s) { return skip_space(s, 0) == s.size(); }

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

constexpr std::array<std::string_view, 25> operators = {
    "//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "=",
    ".",  ",",  ":",  "|",  "(",  ")",  "[", "]", "{", "}"};

class Lexer {
 public:
  Lexer(std::string_view source, const LexOptions& options) : options_(options) {
    // All newline kinds become "\n"; one trailing newline goes (keep_trailing_newline=False).
    src_.reserve(source.size());
    for (size_t i = 0; i < source.size(); ++i) {
      if (source[i] == '\r') {
        src_ += '\n';
        if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
      } else {
        src_ += source[i];
      }
    }
    if (!src_.empty() && src_.back() == '\n') src_.pop_back();
  }

  std::vector<Token> run() {
    bool line_starting = true;
    while (pos_ < src_.size()) {
      size_t tag = find_tag(pos_);
      std::string_view text(src_.data() + pos_, (tag == std::string::npos ? src_.size() : tag) - pos_);
      if (tag == std::string::npos) {
        emit_text(text);
        pos_ = src_.size();
        break;
      }
      char kind = src_[tag + 1];  // '{', '%' or '#'
      char sign = tag + 2 < src_.size() ? src_[tag + 2] : '\0';
      if (sign == '-') {
        text = rstrip(text);
      } else if (sign != '+' && options_.lstrip_blocks && kind != '{') {
        size_t l_pos = text.rfind('\n');
        l_pos = l_pos == std::string_view::npos ? 0 : l_pos + 1;
        if ((l_pos > 0 || line_starting) && is_all_space(text.substr(l_pos))) text = text.substr(0, l_pos);
      }
      emit_text(text);
      advance_to(tag);
      size_t open_len = (sign == '-' || sign == '+') ? 3 : 2;
      if (kind == '#') {
        line_starting = comment(tag + open_len);
      } else if (kind == '%' && is_raw(tag + open_len)) {
        line_starting = raw(tag + open_len);
      } else {
        line_starting = tag_tokens(kind, tag + open_len);
      }
    }
    tokens_.push_back({TokenType::eof, "", line_});
    return std::move(tokens_);
  }

 private:
  [[noreturn]] void error(const std::string& message) const { fail("line {}: {}", line_, message); }

  // Whether `s` is at position pos of the source (pos may be past the end).
  bool at(size_t pos, std::string_view s) const {
    return pos <= src_.size() && std::string_view(src_).substr(pos).starts_with(s);
  }

  size_t find_tag(size_t from) const {
    for (size_t i = src_.find('{', from); i != std::string::npos; i = src_.find('{', i + 1)) {
      if (i + 1 < src_.size() && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) return i;
    }
    return std::string::npos;
  }

  void advance_to(size_t pos) {
    for (size_t i = pos_; i < pos && i < src_.size(); ++i) line_ += src_[i] == '\n';
    pos_ = pos;
  }

  void emit_text(std::string_view text) {
    if (!text.empty()) tokens_.push_back({TokenType::text, std::string(text), line_});
  }

  // After a closing tag: '-' eats all following white space, otherwise trim_blocks (for block
  // and comment tags, unless '+') eats one newline. Returns whether the consumed end is a
  // newline (the lexer's "line starting" state for lstrip_blocks).
  bool after_close(size_t end, char sign, bool is_block) {
    size_t pos = end;
    if (sign == '-') pos = skip_space(src_, pos);
    else if (sign != '+' && is_block && options_.trim_blocks && pos < src_.size() && src_[pos] == '\n') ++pos;
    advance_to(pos);
    return pos > 0 && src_[pos - 1] == '\n';
  }

  bool comment(size_t from) {
    size_t close = src_.find("#}", from);
    if (close == std::string::npos) error("missing end of comment tag");
    char sign = close > from && (src_[close - 1] == '-' || src_[close - 1] == '+') ? src_[close - 1] : '\0';
    return after_close(close + 2, sign, true);
  }

  bool is_raw(size_t from) const {
    size_t p = skip_space(src_, from);
    if (!at(p, "raw") || (p + 3 < src_.size() && is_name_char(src_[p + 3]))) return false;
    return true;
  }

  bool raw(size_t from) {
    size_t p = skip_space(src_, from) + 3;
    p = skip_space(src_, p);
    char sign = '\0';
    if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) sign = src_[p++];
    if (!at(p, "%}")) error("expected '%}' after 'raw'");
    after_close(p + 2, sign, true);
    // The body runs to {% endraw %}, taken verbatim.
    size_t search = pos_;
    while (true) {
      size_t open = src_.find("{%", search);
      if (open == std::string::npos) error("missing {% endraw %}");
      size_t q = open + 2;
      char open_sign = q < src_.size() && (src_[q] == '-' || src_[q] == '+') ? src_[q] : '\0';
      if (open_sign) ++q;
      q = skip_space(src_, q);
      if (at(q, "endraw")) {
        q = skip_space(src_, q + 6);
        char close_sign = '\0';
        if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) close_sign = src_[q++];
        if (at(q, "%}")) {
          std::string_view body(src_.data() + pos_, open - pos_);
          if (open_sign == '-') body = rstrip(body);
          emit_text(body);
          advance_to(open);
          return after_close(q + 2, close_sign, true);
        }
      }
      search = open + 2;
    }
  }

  bool tag_tokens(char kind, size_t from) {
    bool is_block = kind == '%';
    tokens_.push_back({is_block ? TokenType::block_begin : TokenType::var_begin, "", line_});
    advance_to(from);
    int depth = 0;  // open brackets: a closing delimiter inside them belongs to the expression
    while (true) {
      size_t p = pos_;
      while (p < src_.size() && (src_[p] == ' ' || src_[p] == '\t' || src_[p] == '\n')) ++p;
      advance_to(p);
      if (p >= src_.size())
        error(is_block ? "unexpected end of template, expected '%}'" : "unexpected end of template, expected '}}'");
      if (depth == 0) {
        char sign = (src_[p] == '-' || (is_block && src_[p] == '+')) ? src_[p] : '\0';
        size_t q = sign ? p + 1 : p;
        std::string_view close = is_block ? "%}" : "}}";
        if (at(q, close)) {
          tokens_.push_back({is_block ? TokenType::block_end : TokenType::var_end, "", line_});
          return after_close(q + 2, sign, is_block);
        }
      }
      char c = src_[p];
      if (c == '\'' || c == '"') {
        lex_string(p);
      } else if (is_digit(c)) {
        lex_number(p);
      } else if (is_name_start(c)) {
        size_t q = p;
        while (q < src_.size() && is_name_char(src_[q])) ++q;
        tokens_.push_back({TokenType::name, src_.substr(p, q - p), line_});
        advance_to(q);
      } else {
        lex_operator(p, depth);
      }
    }
  }

  void lex_string(size_t p) {
    char quote = src_[p];
    size_t q = p + 1;
    while (q < src_.size() && src_[q] != quote) q += src_[q] == '\\' ? 2 : 1;
    if (q >= src_.size()) error("unterminated string literal");
    std::string value = unescape_string_literal(std::string_view(src_).substr(p + 1, q - p - 1));
    tokens_.push_back({TokenType::string, std::move(value), line_});
    advance_to(q + 1);
  }

  // 42, 1_000, 3.5, 1e-3 (jinja2's integer and float forms, without 0x/0o/0b).
  void lex_number(size_t p) {
    size_t q = p;
    while (q < src_.size() && (is_digit(src_[q]) || src_[q] == '_')) ++q;
    bool is_float = false;
    if (q + 1 < src_.size() && src_[q] == '.' && is_digit(src_[q + 1])) {
      is_float = true;
      ++q;
      while (q < src_.size() && (is_digit(src_[q]) || src_[q] == '_')) ++q;
    }
    if (q < src_.size() && (src_[q] == 'e' || src_[q] == 'E')) {
      size_t r = q + 1;
      if (r < src_.size() && (src_[r] == '+' || src_[r] == '-')) ++r;
      if (r < src_.size() && is_digit(src_[r])) {
        is_float = true;
        q = r;
        while (q < src_.size() && is_digit(src_[q])) ++q;
      }
    }
    std::string number;
    for (size_t i = p; i < q; ++i)
      if (src_[i] != '_') number += src_[i];
    tokens_.push_back({is_float ? TokenType::floating : TokenType::integer, number, line_});
    advance_to(q);
  }

  // The longest operator at p; brackets change the nesting depth.
  void lex_operator(size_t p, int& depth) {
    std::string_view op;
    for (std::string_view candidate : operators)
      if (at(p, candidate)) {
        op = candidate;
        break;
      }
    if (op.empty()) error(fmt::format("unexpected character '{}'", src_[p]));
    if (op == "(" || op == "[" || op == "{") ++depth;
    if ((op == ")" || op == "]" || op == "}") && depth > 0) --depth;
    tokens_.push_back({TokenType::op, std::string(op), line_});
    advance_to(p + op.size());
  }

  std::string src_;
  LexOptions options_;
  size_t pos_ = 0;
  int line_ = 1;
  std::vector<Token> tokens_;
};

}  // namespace

std::string unescape_string_literal(std::string_view body) {
  std::string out;
  out.reserve(body.size());
  for (size_t i = 0; i < body.size(); ++i) {
    char c = body[i];
    if (c != '\\' || i + 1 >= body.size()) {
      out += c;
      continue;
    }
    char d = body[++i];
    switch (d) {
      case '\n': break;  // line continuation
      case '\\': out += '\\'; break;
      case '\'': out += '\''; break;
      case '"': out += '"'; break;
      case 'a': out += '\a'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'v': out += '\v'; break;
      case 'x':
      case 'u':
      case 'U': {
        size_t n = d == 'x' ? 2 : d == 'u' ? 4 : 8;
        char32_t cp = 0;
        bool ok = i + n < body.size();
        for (size_t k = 1; ok && k <= n; ++k) {
          int h = i + k < body.size() ? hex_value(body[i + k]) : -1;
          if (h < 0) ok = false;
          else cp = cp * 16 + char32_t(h);
        }
        if (!ok || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
          fail("string literal: truncated or invalid \\{} escape", d);
        utf8::append(out, cp);
        i += n;
        break;
      }
      default:
        if (d >= '0' && d <= '7') {
          char32_t cp = char32_t(d - '0');
          for (int k = 0; k < 2 && i + 1 < body.size() && body[i + 1] >= '0' && body[i + 1] <= '7'; ++k)
            cp = cp * 8 + char32_t(body[++i] - '0');
          utf8::append(out, cp);
        } else {
          out += '\\';  // unknown escapes stay as written
          out += d;
        }
    }
  }
  return out;
}

std::vector<Token> lex(std::string_view source, const LexOptions& options) {
  return Lexer(source, options).run();
}

}  // namespace dsi::jinja
