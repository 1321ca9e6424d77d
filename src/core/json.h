#pragma once
// nlohmann::json with errors that name the document and the field at fault.
#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>

#include "core/error.h"

namespace dsi {

using Json = nlohmann::json;

// Parses text; a syntax error becomes "<what>: malformed JSON: <detail>".
Json parse_json(std::string_view text, std::string_view what);

std::string_view json_type_name(const Json& j);

// A required field of type T; missing or of the wrong type is an Error naming `what.key`.
template <class T>
T json_get(const Json& obj, const std::string& key, std::string_view what);

// An optional field: absent or null gives std::nullopt; present with the wrong type is an Error.
template <class T>
std::optional<T> json_get_opt(const Json& obj, const std::string& key, std::string_view what);

template <class T>
bool json_holds(const Json& j) {
  if constexpr (std::is_same_v<T, bool>) return j.is_boolean();
  else if constexpr (std::is_integral_v<T>) return j.is_number_integer();
  else if constexpr (std::is_floating_point_v<T>) return j.is_number();
  else if constexpr (std::is_same_v<T, std::string>) return j.is_string();
  else if constexpr (std::is_same_v<T, Json>) return true;
  else return false;
}

template <class T>
std::optional<T> json_get_opt(const Json& obj, const std::string& key, std::string_view what) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::nullopt;
  if (!json_holds<T>(*it))
    fail("{}: field '{}' has type {}, expected {}", what, key, json_type_name(*it),
         std::is_same_v<T, bool> ? "boolean"
         : std::is_integral_v<T> ? "integer"
         : std::is_floating_point_v<T> ? "number"
                                       : "string");
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    if (it->is_number_unsigned() ? it->template get<uint64_t>() > uint64_t(std::numeric_limits<T>::max())
                                 : (it->template get<int64_t>() < int64_t(std::numeric_limits<T>::min()) ||
                                    it->template get<int64_t>() > int64_t(std::numeric_limits<T>::max())))
      fail("{}: field '{}' = {} is out of range", what, key, it->dump());
  }
  return it->template get<T>();
}

template <class T>
T json_get(const Json& obj, const std::string& key, std::string_view what) {
  if (!obj.contains(key)) fail("{}: missing field '{}'", what, key);
  auto v = json_get_opt<T>(obj, key, what);
  if (!v) fail("{}: field '{}' is null", what, key);
  return *v;
}

}  // namespace dsi
