#pragma once
// Request framing (RFC 9112 section 6): whether a request's header says unambiguously where
// its body ends. Beast's parser already refuses what it cannot parse (bad chunk sizes, a
// Content-Length that is not a number, bare CR); these checks refuse what it would accept but
// another HTTP implementation could frame differently, the ground of request smuggling:
// a transfer coding other than one final `chunked` (Beast then reads no body and the body
// becomes the next request), Content-Length together with Transfer-Encoding, repeated or list
// Content-Length, Transfer-Encoding in HTTP/1.0, and obs-fold (a header line continued on
// the next, which Beast joins silently).
//
// Every framing error is answered 400 and the connection closed: nothing after the header
// can be trusted to be a request. Pure functions, any thread.
#include <optional>
#include <string>
#include <string_view>

#include "core/beast.h"

namespace dsi::server {

// Checks the raw header bytes (request line to the blank line): obs-fold. The message says
// what is wrong, for the 400.
std::optional<std::string> raw_header_framing_error(std::string_view raw_header);

// Checks a parsed request header: its Transfer-Encoding and Content-Length fields.
std::optional<std::string> header_framing_error(const http::request_header<>& header);

}  // namespace dsi::server
