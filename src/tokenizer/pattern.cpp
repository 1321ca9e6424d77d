#include "tokenizer/pattern.h"

namespace dsi {

std::string escape_regex(std::string_view literal) {
  std::string out;
  out.reserve(literal.size() * 2);
  for (char c : literal) {
    auto u = uint8_t(c);
    bool plain = u >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (!plain) out += '\\';
    out += c;
  }
  return out;
}

Pattern Pattern::from_json(const Json& j, std::string_view what) {
  if (!j.is_object()) fail("{}: expected an object {{\"Regex\": ...}} or {{\"String\": ...}}", what);
  if (auto regex = json_get_opt<std::string>(j, "Regex", what)) {
    try {
      return Pattern(Regex(*regex), false);
    } catch (const Error& e) {
      fail("{}: {}", what, e.what());
    }
  }
  if (auto literal = json_get_opt<std::string>(j, "String", what))
    return Pattern(Regex(escape_regex(*literal)), literal->empty());
  fail("{}: expected a 'Regex' or 'String' field", what);
}

}  // namespace dsi
