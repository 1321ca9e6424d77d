#include "tokenizer/jinja_strings.h"

#include <unicode/locid.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>

#include <algorithm>

#include "core/error.h"
#include "tokenizer/jinja_value.h"
#include "tokenizer/unicode_props.h"
#include "tokenizer/utf8.h"

namespace dsi::jinja::py {
namespace {

std::vector<char32_t> code_points(std::string_view s) {
  std::vector<char32_t> out;
  size_t pos = 0;
  while (pos < s.size()) out.push_back(utf8::decode(s, pos));
  return out;
}

std::string case_map(std::string_view s, bool to_upper) {
  icu::UnicodeString u = icu::UnicodeString::fromUTF8(icu::StringPiece(s.data(), int32_t(s.size())));
  if (to_upper) u.toUpper(icu::Locale::getRoot());
  else u.toLower(icu::Locale::getRoot());
  std::string out;
  u.toUTF8String(out);
  return out;
}

// Full case mapping of one character (Python maps characters one by one for title()).
std::string map_char(char32_t c, int how) {  // 0 lower, 1 upper, 2 title
  icu::UnicodeString u{UChar32(c)};
  if (how == 0) u.toLower(icu::Locale::getRoot());
  else if (how == 1) u.toUpper(icu::Locale::getRoot());
  else u.toTitle(nullptr, icu::Locale::getRoot(), U_TITLECASE_NO_BREAK_ADJUSTMENT | U_TITLECASE_NO_LOWERCASE);
  std::string out;
  u.toUTF8String(out);
  return out;
}

bool is_cased(char32_t c) { return u_hasBinaryProperty(UChar32(c), UCHAR_CASED); }

}  // namespace

std::vector<std::string> chars(std::string_view s) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t start = pos;
    pos += utf8::lead_length(uint8_t(s[pos]));
    out.emplace_back(s.substr(start, pos - start));
  }
  return out;
}

std::string strip(std::string_view s, const std::optional<std::string>& chars_opt, bool left, bool right) {
  std::vector<char32_t> set;
  if (chars_opt) set = code_points(*chars_opt);
  auto strippable = [&](char32_t c) {
    return chars_opt ? std::find(set.begin(), set.end(), c) != set.end() : unicode::is_python_space(c);
  };
  size_t begin = 0, end = s.size();
  if (left) {
    while (begin < end) {
      size_t pos = begin;
      if (!strippable(utf8::decode(s, pos))) break;
      begin = pos;
    }
  }
  if (right) {
    while (end > begin) {
      size_t start = end - 1;
      while (start > begin && (uint8_t(s[start]) & 0xC0) == 0x80) --start;
      size_t pos = start;
      if (!strippable(utf8::decode(s, pos))) break;
      end = start;
    }
  }
  return std::string(s.substr(begin, end - begin));
}

std::vector<std::string> split(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit) {
  std::vector<std::string> out;
  if (sep) {
    if (sep->empty()) fail("split(): empty separator");
    size_t start = 0;
    while (maxsplit < 0 || int64_t(out.size()) < maxsplit) {
      size_t hit = s.find(*sep, start);
      if (hit == std::string_view::npos) break;
      out.emplace_back(s.substr(start, hit - start));
      start = hit + sep->size();
    }
    out.emplace_back(s.substr(start));
    return out;
  }
  // Runs of white space separate; leading and trailing white space gives no empty strings.
  size_t pos = 0;
  auto skip = [&](bool space) {
    while (pos < s.size()) {
      size_t next = pos;
      if (unicode::is_python_space(utf8::decode(s, next)) != space) break;
      pos = next;
    }
  };
  skip(true);
  while (pos < s.size()) {
    if (maxsplit >= 0 && int64_t(out.size()) == maxsplit) {
      out.emplace_back(strip(s.substr(pos), std::nullopt, false, true));
      return out;
    }
    size_t start = pos;
    skip(false);
    out.emplace_back(s.substr(start, pos - start));
    skip(true);
  }
  return out;
}

std::vector<std::string> rsplit(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit) {
  if (maxsplit < 0) return split(s, sep, maxsplit);
  std::vector<std::string> out;
  if (sep) {
    if (sep->empty()) fail("rsplit(): empty separator");
    size_t end = s.size();
    while (int64_t(out.size()) < maxsplit) {
      if (end < sep->size()) break;
      size_t hit = s.rfind(*sep, end - sep->size());
      if (hit == std::string_view::npos) break;
      out.emplace_back(s.substr(hit + sep->size(), end - hit - sep->size()));
      end = hit;
    }
    out.emplace_back(s.substr(0, end));
    std::reverse(out.begin(), out.end());
    return out;
  }
  std::string rest = strip(s, std::nullopt, false, true);
  while (int64_t(out.size()) < maxsplit && !rest.empty()) {
    size_t end = rest.size();
    size_t start = end;
    while (start > 0) {
      size_t prev = start - 1;
      while (prev > 0 && (uint8_t(rest[prev]) & 0xC0) == 0x80) --prev;
      size_t p = prev;
      if (unicode::is_python_space(utf8::decode(rest, p))) break;
      start = prev;
    }
    out.emplace_back(rest.substr(start, end - start));
    rest = strip(std::string_view(rest).substr(0, start), std::nullopt, false, true);
  }
  if (!rest.empty()) out.emplace_back(strip(rest, std::nullopt, true, false));
  std::reverse(out.begin(), out.end());
  return out;
}

std::vector<std::string> splitlines(std::string_view s, bool keepends) {
  std::vector<std::string> out;
  size_t start = 0, pos = 0;
  while (pos < s.size()) {
    size_t char_start = pos;
    char32_t c = utf8::decode(s, pos);
    bool is_break = c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E ||
                    c == 0x85 || c == 0x2028 || c == 0x2029;
    if (!is_break) continue;
    size_t end_of_break = pos;
    if (c == '\r' && pos < s.size() && s[pos] == '\n') end_of_break = ++pos;
    out.emplace_back(s.substr(start, (keepends ? end_of_break : char_start) - start));
    start = pos;
  }
  if (start < s.size()) out.emplace_back(s.substr(start));
  return out;
}

std::string replace(std::string_view s, std::string_view old, std::string_view with, int64_t count) {
  std::string out;
  int64_t n = 0;
  if (old.empty()) {
    // Python inserts `with` before every character and at the end.
    for (const std::string& c : chars(s)) {
      if (count < 0 || n < count) {
        out += with;
        ++n;
      }
      out += c;
    }
    if (count < 0 || n < count) out += with;
    return out;
  }
  size_t start = 0;
  while (count < 0 || n < count) {
    size_t hit = s.find(old, start);
    if (hit == std::string_view::npos) break;
    out.append(s.substr(start, hit - start));
    out.append(with);
    start = hit + old.size();
    ++n;
  }
  out.append(s.substr(start));
  return out;
}

int64_t find(std::string_view s, std::string_view sub, bool reverse) {
  size_t hit = reverse ? s.rfind(sub) : s.find(sub);
  if (hit == std::string_view::npos) return -1;
  return int64_t(char_count(s.substr(0, hit)));
}

int64_t count(std::string_view s, std::string_view sub) {
  if (sub.empty()) {
    int64_t n = 0;
    for (char c : s) n += (uint8_t(c) & 0xC0) != 0x80;
    return n + 1;
  }
  int64_t n = 0;
  for (size_t hit = s.find(sub); hit != std::string_view::npos; hit = s.find(sub, hit + sub.size())) ++n;
  return n;
}

std::string upper(std::string_view s) { return case_map(s, true); }
std::string lower(std::string_view s) { return case_map(s, false); }

std::string title(std::string_view s) {
  std::string out;
  bool previous_cased = false;
  size_t pos = 0;
  while (pos < s.size()) {
    char32_t c = utf8::decode(s, pos);
    out += map_char(c, previous_cased ? 0 : 2);
    previous_cased = is_cased(c);
  }
  return out;
}

std::string capitalize(std::string_view s) {
  std::string out;
  size_t pos = 0;
  bool first = true;
  while (pos < s.size()) {
    char32_t c = utf8::decode(s, pos);
    out += map_char(c, first ? 2 : 0);
    first = false;
  }
  return out;
}

bool is_class(std::string_view s, std::string_view which) {
  if (s.empty()) return false;
  bool any_cased = false;
  size_t pos = 0;
  while (pos < s.size()) {
    auto c = UChar32(utf8::decode(s, pos));
    if (which == "isdigit") {
      if (u_getIntPropertyValue(c, UCHAR_NUMERIC_TYPE) != U_NT_DECIMAL &&
          u_getIntPropertyValue(c, UCHAR_NUMERIC_TYPE) != U_NT_DIGIT)
        return false;
    } else if (which == "isalpha") {
      if (!(U_GET_GC_MASK(c) & U_GC_L_MASK)) return false;
    } else if (which == "isalnum") {
      if (!(U_GET_GC_MASK(c) & U_GC_L_MASK) && u_getIntPropertyValue(c, UCHAR_NUMERIC_TYPE) == U_NT_NONE)
        return false;
    } else if (which == "isspace") {
      if (!unicode::is_python_space(char32_t(c))) return false;
    } else if (which == "islower" || which == "isupper") {
      bool lower_case = u_isULowercase(c), upper_case = u_isUUppercase(c);
      if (which == "islower" ? upper_case : lower_case) return false;
      any_cased = any_cased || lower_case || upper_case;
    }
  }
  return (which == "islower" || which == "isupper") ? any_cased : true;
}

}  // namespace dsi::jinja::py
