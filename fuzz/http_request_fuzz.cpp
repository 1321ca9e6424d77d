// libFuzzer target: the bytes a client sends on one connection, read the way the server reads
// them (server/http_request_parser.h: Beast's parser with our limits; read_header, the
// framing checks of server/http_framing.h, then the body, then the next pipelined request
// from what is left in the buffer). The first input
// byte sets how many bytes each socket read returns, so the incremental paths of the parser
// run too. Whatever the bytes, reading ends in a request or an error: no crash, no read past
// the input, no header or body beyond its limit.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "server/http_framing.h"
#include "server/http_request_parser.h"

namespace {

namespace beast = dsi::beast;
namespace http = dsi::http;
namespace net = dsi::net;
using dsi::server::HttpLimits;
using dsi::server::HttpRequestParser;

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "property violated: %s\n", what);
    std::abort();
  }
}

// A socket that returns the input `read_size` bytes at a time, then end of stream.
class InputStream {
 public:
  InputStream(std::string_view data, size_t read_size) : data_(data), read_size_(read_size) {}

  template <class Buffers>
  size_t read_some(const Buffers& buffers, beast::error_code& ec) {
    ec = {};
    if (data_.empty()) {
      ec = net::error::eof;
      return 0;
    }
    size_t n = std::min({read_size_, data_.size(), net::buffer_size(buffers)});
    n = net::buffer_copy(buffers, net::buffer(data_.data(), n));
    data_.remove_prefix(n);
    return n;
  }
  template <class Buffers>
  size_t read_some(const Buffers& buffers) {
    beast::error_code ec;
    size_t n = read_some(buffers, ec);
    if (ec) throw beast::system_error(ec);
    return n;
  }

 private:
  std::string_view data_;
  size_t read_size_;
};

// Small limits, so that fuzz inputs reach them.
constexpr HttpLimits kLimits{.max_header_bytes = 1024, .max_body_bytes = 2048};
constexpr int kMaxRequestsPerConnection = 16;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t read_size = size_t(data[0] % 64) + 1;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  // The raw-header check runs on whatever bytes precede the first blank line, as the
  // connection gives it the header it has read.
  (void)dsi::server::raw_header_framing_error(input.substr(0, input.find("\r\n\r\n")));
  InputStream stream(input, read_size);
  beast::flat_buffer buffer;  // kept across requests: pipelined bytes wait here
  for (int i = 0; i < kMaxRequestsPerConnection; ++i) {
    HttpRequestParser parser;
    dsi::server::configure_request_parser(parser, kLimits);
    beast::error_code ec;
    http::read_header(stream, buffer, parser, ec);
    if (ec) return 0;
    // A framing error is a 400 and the connection closes: the body is never read.
    if (dsi::server::header_framing_error(parser.get())) return 0;
    if (!parser.is_done()) http::read(stream, buffer, parser, ec);
    if (ec) return 0;  // the server answers the error and closes the connection
    check(parser.is_done(), "a request without error is complete");
    const auto& request = parser.get();
    check(request.body().size() <= kLimits.max_body_bytes, "body within its limit");
    // What the server reads of every request: method, target, version, keep-alive, fields.
    (void)request.method();
    check(request.target().size() < size, "target from the input");
    (void)request[http::field::authorization];
    (void)request[http::field::expect];
    if (!request.keep_alive()) return 0;
  }
  return 0;
}
