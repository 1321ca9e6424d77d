#pragma once
// How the server parses a request: Beast's parser with our limits. Its own file so that the
// connection and the HTTP fuzz target (fuzz/http_request_fuzz.cpp) set it up the same way.
#include "core/beast.h"
#include "server/http_connection.h"

namespace dsi::server {

using HttpRequestParser = http::request_parser<http::string_body>;

// Applies the header and body limits; a parser is set up once per request.
void configure_request_parser(HttpRequestParser& parser, const HttpLimits& limits);

}  // namespace dsi::server
