#include "server/http_framing.h"

#include <fmt/format.h>

namespace dsi::server {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string_view sv(beast::string_view s) { return {s.data(), s.size()}; }

}  // namespace

std::optional<std::string> raw_header_framing_error(std::string_view raw_header) {
  // obs-fold = CRLF 1*(SP / HTAB) inside the header (RFC 9112 section 5.2): a server must
  // either refuse it or unfold it; an intermediary that does the other frames differently.
  for (size_t at = raw_header.find('\n'); at != std::string_view::npos; at = raw_header.find('\n', at + 1))
    if (at + 1 < raw_header.size() && (raw_header[at + 1] == ' ' || raw_header[at + 1] == '\t'))
      return "obsolete line folding (a header line starting with a space or tab) is not accepted";
  return std::nullopt;
}

std::optional<std::string> header_framing_error(const http::request_header<>& header) {
  size_t n_transfer_encoding = 0, n_content_length = 0;
  std::string_view transfer_encoding, content_length;
  for (const auto& field : header) {
    if (field.name() == http::field::transfer_encoding) {
      ++n_transfer_encoding;
      transfer_encoding = sv(field.value());
    } else if (field.name() == http::field::content_length) {
      ++n_content_length;
      content_length = sv(field.value());
    }
  }
  if (n_transfer_encoding > 0) {
    if (header.version() < 11)
      return "Transfer-Encoding is not allowed in an HTTP/1.0 request (RFC 9112 section 6.1)";
    if (n_content_length > 0)
      return "a request must not have both Content-Length and Transfer-Encoding (RFC 9112 section 6.3)";
    // The only coding this server decodes is chunked, once and last: anything else leaves the
    // body's end unknown (RFC 9112 section 6.3), so it cannot be answered and read past.
    std::string_view coding = trim(transfer_encoding);
    if (n_transfer_encoding > 1 || !beast::iequals(beast::string_view(coding.data(), coding.size()), "chunked"))
      return fmt::format("unsupported Transfer-Encoding '{}': only 'chunked' is accepted", transfer_encoding);
  }
  if (n_content_length > 1)
    return "more than one Content-Length field (RFC 9110 section 8.6)";
  if (n_content_length == 1) {
    std::string_view digits = trim(content_length);
    bool all_digits = !digits.empty();
    for (char c : digits) all_digits = all_digits && c >= '0' && c <= '9';
    if (!all_digits) return fmt::format("Content-Length '{}' is not a decimal number of bytes", content_length);
  }
  return std::nullopt;
}

}  // namespace dsi::server
