#include "server/api_error.h"

namespace dsi::server {

const char* error_type_for_status(int status) {
  switch (status) {
    case 401: return "authentication_error";
    case 404: return "not_found_error";
    case 405: return "method_not_allowed_error";
    case 408: return "timeout_error";
    case 413: return "request_too_large_error";
    case 503: return "service_unavailable_error";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

Json error_json(int status, const std::string& message, const std::string& param, const std::string& type) {
  // Messages quote input clipped (clip_text); this bounds whatever else reaches a client.
  Json error = {{"message", clip_text(message, kMaxErrorMessageBytes)},
                {"type", type.empty() ? error_type_for_status(status) : type},
                {"param", param.empty() ? Json(nullptr) : Json(clip_text(param, 100))},
                {"code", status}};
  return Json{{"error", std::move(error)}};
}

Json error_json(const ApiError& e) { return error_json(e.status(), e.what(), e.param(), e.type()); }

}  // namespace dsi::server
