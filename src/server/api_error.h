#pragma once
// Errors a client causes, in the OpenAI shape: {"error": {"message", "type", "param", "code"}}
// with an HTTP status. Request parsing throws ApiError; the HTTP layer turns it (or any other
// dsi::Error, as a 400) into the response.
#include <string>
#include <utility>

#include "core/error.h"
#include "core/json.h"

namespace dsi::server {

class ApiError : public Error {
 public:
  ApiError(int status, std::string message, std::string param = "", std::string type = "")
      : Error(std::move(message)), status_(status), param_(std::move(param)), type_(std::move(type)) {}
  int status() const { return status_; }
  const std::string& param() const { return param_; }  // the offending request field, or empty
  // OpenAI's error type; empty: the default for the status (see error_type_for_status).
  const std::string& type() const { return type_; }

 private:
  int status_;
  std::string param_;
  std::string type_;
};

// An invalid request field: 400 naming the field.
template <class... Args>
[[noreturn]] void fail_param(const std::string& param, fmt::format_string<Args...> format, Args&&... args) {
  throw ApiError(400, fmt::format(format, std::forward<Args>(args)...), param);
}

// The longest error message a response carries; longer ones are cut (clip_text).
constexpr size_t kMaxErrorMessageBytes = 1024;

// "invalid_request_error" for 4xx, "authentication_error" for 401, "server_error" for 5xx...
const char* error_type_for_status(int status);

// The body of an error response. `code` is the HTTP status, as vLLM sends it.
Json error_json(int status, const std::string& message, const std::string& param = "", const std::string& type = "");
Json error_json(const ApiError& e);

}  // namespace dsi::server
