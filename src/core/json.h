#pragma once
// nlohmann::json with errors that name the document and the field at fault.
#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>

#include "core/error.h"

namespace dsi {

using Json = nlohmann::json;

// The deepest nesting of arrays and objects any JSON text may have. Far above any real
// document (requests nest ~6 levels, model and tokenizer files ~5), and low enough that the
// recursive walks of a parsed value (dump, copy, compare, a chat template's tojson) need
// only a few KB of stack: a 70k-deep array from a client would otherwise overflow it.
constexpr int kMaxJsonDepth = 128;

// Why a JSON text was refused. `path` locates the value at fault ("max_tokens",
// "messages[2].content"; empty for a syntax error or the document itself) and `field` is
// its top-level key (empty if none), for an API error's `param`.
class JsonParseError : public Error {
 public:
  JsonParseError(std::string message, std::string path, std::string field)
      : Error(std::move(message)), path_(std::move(path)), field_(std::move(field)) {}
  const std::string& path() const { return path_; }
  const std::string& field() const { return field_; }

 private:
  std::string path_;
  std::string field_;
};

// Parses text into J (Json or nlohmann::ordered_json) with nesting at most max_depth. Throws
// JsonParseError for a syntax error, nesting too deep, or a number out of range (1e400); its
// message quotes at most a few dozen bytes of the input, whatever the input's size.
template <class J = Json>
J parse_json_bounded(std::string_view text, int max_depth = kMaxJsonDepth);

// Parses text (bounded as above); an error becomes "<what>: malformed JSON: <detail>".
Json parse_json(std::string_view text, std::string_view what);

// At most max_bytes of s (cut at a UTF-8 character boundary), then "... (N bytes)" when cut:
// for quoting input in an error message without echoing all of it.
std::string clip_text(std::string_view s, size_t max_bytes = 100);

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
