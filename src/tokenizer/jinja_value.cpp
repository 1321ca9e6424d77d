#include "tokenizer/jinja_value.h"

#include <unicode/uchar.h>

#include <algorithm>
#include <charconv>
#include <cmath>

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace dsi::jinja {
namespace {

// Python's str.isprintable for one character.
bool python_printable(char32_t c) {
  if (c == ' ') return true;
  switch (u_charType(UChar32(c))) {
    case U_CONTROL_CHAR:
    case U_FORMAT_CHAR:
    case U_SURROGATE:
    case U_PRIVATE_USE_CHAR:
    case U_UNASSIGNED:
    case U_LINE_SEPARATOR:
    case U_PARAGRAPH_SEPARATOR:
    case U_SPACE_SEPARATOR: return false;
    default: return true;
  }
}

std::string python_string_repr(const std::string& s) {
  bool has_single = s.find('\'') != std::string::npos;
  bool has_double = s.find('"') != std::string::npos;
  char quote = has_single && !has_double ? '"' : '\'';
  std::string out(1, quote);
  size_t pos = 0;
  while (pos < s.size()) {
    size_t start = pos;
    char32_t c = utf8::decode(s, pos);
    if (c == char32_t(quote) || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (!python_printable(c)) {
      if (c < 0x100) out += fmt::format("\\x{:02x}", uint32_t(c));
      else if (c < 0x10000) out += fmt::format("\\u{:04x}", uint32_t(c));
      else out += fmt::format("\\U{:08x}", uint32_t(c));
    } else {
      out.append(s, start, pos - start);
    }
  }
  out += quote;
  return out;
}

void json_string(std::string& out, const std::string& s, bool ensure_ascii) {
  out += '"';
  for (size_t i = 0; i < s.size(); ++i) {
    char ch = s[i];
    auto c = uint8_t(ch);
    if (ensure_ascii && c >= 0x80) {
      size_t pos = i;
      char32_t cp = utf8::decode(s, pos);
      i = pos - 1;
      if (cp >= 0x10000) {
        cp -= 0x10000;
        out += fmt::format("\\u{:04x}\\u{:04x}", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
      } else {
        out += fmt::format("\\u{:04x}", uint32_t(cp));
      }
      continue;
    }
    switch (ch) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) out += fmt::format("\\u{:04x}", unsigned(c));
        else out += ch;
    }
  }
  out += '"';
}

void json_dump(std::string& out, const Value& v, const JsonStyle& style, int depth) {
  if (depth > 200) fail("tojson: value nested too deeply");
  int indent = style.indent;
  std::string_view item_sep = !style.item_separator.empty() ? std::string_view(style.item_separator)
                              : indent >= 0                 ? std::string_view(",")
                                                            : std::string_view(", ");
  auto newline = [&](int level) {
    out += '\n';
    out.append(size_t(indent) * size_t(level), ' ');
  };
  if (v.is_none()) {
    out += "null";
  } else if (v.is_bool()) {
    out += v.as_bool() ? "true" : "false";
  } else if (v.is_int()) {
    out += std::to_string(v.as_int());
  } else if (v.is_float()) {
    double d = v.as_double();
    if (std::isnan(d)) out += "NaN";
    else if (std::isinf(d)) out += d > 0 ? "Infinity" : "-Infinity";
    else out += format_python_float(d);
  } else if (v.is_string()) {
    json_string(out, v.as_string(), style.ensure_ascii);
  } else if (v.is_list()) {
    const ValueList& list = v.as_list();
    if (list.empty()) {
      out += "[]";
      return;
    }
    out += '[';
    for (size_t i = 0; i < list.size(); ++i) {
      if (i) out += item_sep;
      if (indent >= 0) newline(depth + 1);
      json_dump(out, list[i], style, depth + 1);
    }
    if (indent >= 0) newline(depth);
    out += ']';
  } else if (v.is_dict() || v.is_namespace()) {
    if (v.is_namespace()) fail("tojson: Object of type Namespace is not JSON serializable");
    std::vector<const std::pair<std::string, Value>*> entries;
    for (const auto& e : v.as_dict().entries) entries.push_back(&e);
    if (style.sort_keys)
      std::stable_sort(entries.begin(), entries.end(), [](auto* a, auto* b) { return a->first < b->first; });
    if (entries.empty()) {
      out += "{}";
      return;
    }
    out += '{';
    for (size_t i = 0; i < entries.size(); ++i) {
      if (i) out += item_sep;
      if (indent >= 0) newline(depth + 1);
      json_string(out, entries[i]->first, style.ensure_ascii);
      out += style.key_separator;
      json_dump(out, entries[i]->second, style, depth + 1);
    }
    if (indent >= 0) newline(depth);
    out += '}';
  } else {
    fail("tojson: Object of type {} is not JSON serializable", v.is_undefined() ? "Undefined" : v.type_name());
  }
}

}  // namespace

const Value* ValueDict::find(std::string_view key) const {
  for (const auto& [k, v] : entries)
    if (k == key) return &v;
  return nullptr;
}

void ValueDict::set(std::string key, Value value) {
  for (auto& [k, v] : entries) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  entries.emplace_back(std::move(key), std::move(value));
}

Value::Value(ValueList list) {
  int d = 0;
  for (const Value& v : list) d = std::max(d, int(v.depth_));
  if (d + 1 > max_depth) fail("value nested more than {} levels deep", max_depth);
  depth_ = uint8_t(d + 1);
  v_ = std::make_shared<const ValueList>(std::move(list));
}

Value::Value(ValueDict dict) {
  int d = 0;
  for (const auto& [k, v] : dict.entries) d = std::max(d, int(v.depth_));
  if (d + 1 > max_depth) fail("value nested more than {} levels deep", max_depth);
  depth_ = uint8_t(d + 1);
  v_ = std::make_shared<const ValueDict>(std::move(dict));
}

bool Value::holds_namespace() const {
  if (is_namespace()) return true;
  if (is_list())
    for (const Value& v : as_list())
      if (v.holds_namespace()) return true;
  if (is_dict())
    for (const auto& [k, v] : as_dict().entries)
      if (v.holds_namespace()) return true;
  return false;
}

std::string_view Value::type_name() const {
  switch (v_.index()) {
    case 0: return "Undefined";
    case 1: return "NoneType";
    case 2: return "bool";
    case 3: return "int";
    case 4: return "float";
    case 5: return "str";
    case 6: return "list";
    case 7: return "dict";
    case 8: return "Namespace";
    default: return "function";
  }
}

bool Value::truthy() const {
  if (is_undefined() || is_none()) return false;
  if (is_bool()) return as_bool();
  if (is_int()) return as_int() != 0;
  if (is_float()) return as_double() != 0.0;
  if (is_string()) return !as_string().empty();
  if (is_list()) return !as_list().empty();
  if (is_dict()) return !as_dict().entries.empty();
  return true;
}

std::string Value::to_str() const {
  if (is_undefined()) return "";
  if (is_string()) return as_string();
  return repr();
}

std::string Value::repr() const {
  if (is_undefined()) return "";
  if (is_none()) return "None";
  if (is_bool()) return as_bool() ? "True" : "False";
  if (is_int()) return std::to_string(as_int());
  if (is_float()) {
    double d = as_double();
    if (std::isnan(d)) return "nan";
    if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
    return format_python_float(d);
  }
  if (is_string()) return python_string_repr(as_string());
  if (is_list()) {
    std::string out = is_tuple() ? "(" : "[";
    const ValueList& list = as_list();
    for (size_t i = 0; i < list.size(); ++i) {
      if (i) out += ", ";
      out += list[i].repr();
    }
    if (is_tuple()) return out + (list.size() == 1 ? ",)" : ")");
    return out + "]";
  }
  if (is_dict()) {
    std::string out = "{";
    bool first = true;
    for (const auto& [k, v] : as_dict().entries) {
      if (!first) out += ", ";
      first = false;
      out += python_string_repr(k) + ": " + v.repr();
    }
    return out + "}";
  }
  if (is_namespace()) return "<Namespace>";
  return "<function " + as_function().name + ">";
}

bool equals(const Value& a, const Value& b) {
  if (a.is_undefined() || b.is_undefined()) return a.is_undefined() && b.is_undefined();
  if (a.is_none() || b.is_none()) return a.is_none() && b.is_none();
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_double() == b.as_double();
    return a.as_int() == b.as_int();
  }
  if (a.is_string() && b.is_string()) return a.as_string() == b.as_string();
  if (a.is_list() && b.is_list()) {
    if (a.is_tuple() != b.is_tuple()) return false;
    const ValueList& x = a.as_list();
    const ValueList& y = b.as_list();
    if (x.size() != y.size()) return false;
    for (size_t i = 0; i < x.size(); ++i)
      if (!equals(x[i], y[i])) return false;
    return true;
  }
  if (a.is_dict() && b.is_dict()) {
    const ValueDict& x = a.as_dict();
    const ValueDict& y = b.as_dict();
    if (x.entries.size() != y.entries.size()) return false;
    for (const auto& [k, v] : x.entries) {
      const Value* other = y.find(k);
      if (!other || !equals(v, *other)) return false;
    }
    return true;
  }
  if (a.is_namespace() && b.is_namespace()) return a.as_namespace().attrs == b.as_namespace().attrs;
  if (a.is_function() && b.is_function()) return a.as_function().name == b.as_function().name;
  return false;
}

bool less_than(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_double() < b.as_double();
    return a.as_int() < b.as_int();
  }
  if (a.is_string() && b.is_string()) return a.as_string() < b.as_string();  // UTF-8 order = code point order
  if (a.is_list() && b.is_list()) {
    const ValueList& x = a.as_list();
    const ValueList& y = b.as_list();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (!equals(x[i], y[i])) return less_than(x[i], y[i]);
    }
    return x.size() < y.size();
  }
  fail("'<' not supported between instances of '{}' and '{}'", a.type_name(), b.type_name());
}

std::string format_python_float(double d) {
  if (d == 0) return std::signbit(d) ? "-0.0" : "0.0";
  // Shortest round-trip digits, then Python's layout rules (float_repr_style 'short').
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string sci(buf, end);  // e.g. "-1.2345e+17"
  bool negative = sci[0] == '-';
  if (negative) sci.erase(0, 1);
  size_t e_pos = sci.find('e');
  std::string mantissa = sci.substr(0, e_pos);
  int exponent = std::stoi(sci.substr(e_pos + 1));
  std::string digits;
  for (char c : mantissa)
    if (c != '.') digits += c;
  // Python: scientific when the decimal exponent is < -4 or >= 16.
  std::string out = negative ? "-" : "";
  if (exponent < -4 || exponent >= 16) {
    out += digits[0];
    if (digits.size() > 1) {
      out.push_back('.');
      out.append(digits, 1, std::string::npos);
    }
    out += fmt::format("e{}{:02d}", exponent < 0 ? '-' : '+', std::abs(exponent));
    return out;
  }
  if (exponent < 0) {
    out.append("0.");
    out.append(size_t(-exponent - 1), '0');
    out.append(digits);
  } else if (size_t(exponent) + 1 >= digits.size()) {
    out.append(digits);
    out.append(size_t(exponent) + 1 - digits.size(), '0');
    out.append(".0");
  } else {
    out.append(digits, 0, size_t(exponent) + 1);
    out.push_back('.');
    out.append(digits, size_t(exponent) + 1, std::string::npos);
  }
  return out;
}

std::string to_json(const Value& v, const JsonStyle& style) {
  std::string out;
  json_dump(out, v, style, 0);
  return out;
}

size_t char_count(std::string_view s) {
  size_t n = 0;
  for (char c : s) n += (uint8_t(c) & 0xC0) != 0x80;
  return n;
}

}  // namespace dsi::jinja
