#pragma once
// Argument handling shared by the Jinja builtins (filters, tests, methods, functions):
// positional-or-keyword lookup and type checks with Python-like error messages.
#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "tokenizer/jinja_builtins.h"

namespace dsi::jinja::detail {

[[noreturn]] inline void undefined_error(const Value& v) {
  fail("{}", v.undefined_hint().empty() ? "value is undefined" : v.undefined_hint());
}

inline void check_defined(const Value& v) {
  if (v.is_undefined()) undefined_error(v);
}

// Positional argument i, or keyword `name`.
inline std::optional<Value> arg(const Args& args, const Kwargs& kwargs, size_t i, std::string_view name) {
  for (const auto& [k, v] : kwargs)
    if (k == name) return v;
  if (i < args.size()) return args[i];
  return std::nullopt;
}

inline void check_arity(std::string_view what, const Args& args, const Kwargs& kwargs, size_t max_positional,
                 std::initializer_list<std::string_view> keywords) {
  if (args.size() > max_positional) fail("{}() takes at most {} positional arguments", what, max_positional);
  for (const auto& [k, v] : kwargs)
    if (std::find(keywords.begin(), keywords.end(), k) == keywords.end())
      fail("{}() got an unexpected keyword argument '{}'", what, k);
}

inline int64_t need_int(const Value& v, std::string_view what) {
  if (!v.is_int() && !v.is_bool()) fail("{}: expected an integer, got {}", what, v.type_name());
  return v.as_int();
}

inline const std::string& need_string(const Value& v, std::string_view what) {
  if (v.is_undefined()) undefined_error(v);
  if (!v.is_string()) fail("{}: expected a string, got {}", what, v.type_name());
  return v.as_string();
}

inline std::optional<std::string> optional_string(const std::optional<Value>& v, std::string_view what) {
  if (!v || v->is_none()) return std::nullopt;
  return need_string(*v, what);
}

inline Value make_list(std::vector<std::string> items) {
  ValueList list;
  list.reserve(items.size());
  for (auto& s : items) list.emplace_back(std::move(s));
  return Value(std::move(list));
}

inline void check_size(size_t n) {
  if (n > max_string_bytes) fail("result larger than {} bytes", max_string_bytes);
}

// A whole number that must fit in int64 (Python ints do not overflow; we fail instead).
inline int64_t checked_int64(long double v) {
  if (v > static_cast<long double>(std::numeric_limits<int64_t>::max()) ||
      v < static_cast<long double>(std::numeric_limits<int64_t>::min()))
    fail("integer overflow");
  return int64_t(v);
}

}  // namespace dsi::jinja::detail
