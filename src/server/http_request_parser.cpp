#include "server/http_request_parser.h"

namespace dsi::server {

void configure_request_parser(HttpRequestParser& parser, const HttpLimits& limits) {
  parser.header_limit(limits.max_header_bytes);
  parser.body_limit(limits.max_body_bytes);
}

}  // namespace dsi::server
