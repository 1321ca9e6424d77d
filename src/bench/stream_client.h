#pragma once
// The benchmark's HTTP side: streaming POSTs to an OpenAI-compatible server over a pool of
// keep-alive connections (Boost.Beast on Asio: one thread drives every stream), timing each
// SSE event as it arrives.
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/beast.h"

namespace dsi::bench {

using Clock = std::chrono::steady_clock;

struct ServerAddress {
  std::string host;
  std::string port;
  std::string base_path;  // prefix before /v1 ("" for http://host:port)
  std::string describe() const { return "http://" + host + ":" + port + base_path; }
};

// http://host[:port][/prefix][/v1][/]: the server's root (plain HTTP only).
ServerAddress parse_base_url(const std::string& url);

// What one streamed request gave.
struct StreamResult {
  bool ok = false;
  int status = 0;
  std::string error;
  double start = 0;  // seconds since the benchmark began
  double ttft = -1;  // seconds to the first event with output text
  double e2e = 0;    // seconds to the end of the response
  std::vector<double> itl;     // seconds between events with output text
  int64_t prompt_tokens = -1;  // from the usage chunk, when the server sends one
  int64_t output_tokens = -1;  // from the usage chunk; else the events with output text
  int64_t n_text_events = 0;
};

class StreamClient {
 public:
  StreamClient(net::io_context& ioc, const ServerAddress& address, std::string api_key, double timeout_s,
               Clock::time_point t0);

  // POSTs a JSON body with stream=true to `path` (under the base path); `done` runs on the
  // io_context's thread when the response ends or fails.
  void post_stream(const std::string& path, std::string body, std::function<void(StreamResult&&)> done);

  const ServerAddress& address() const { return address_; }

 private:
  friend class StreamOp;
  std::unique_ptr<beast::tcp_stream> take_idle();
  void give_back(std::unique_ptr<beast::tcp_stream> stream) { idle_.push_back(std::move(stream)); }

  net::io_context& ioc_;
  ServerAddress address_;
  std::string api_key_;
  double timeout_s_;
  Clock::time_point t0_;
  tcp::resolver::results_type endpoints_;
  std::vector<std::unique_ptr<beast::tcp_stream>> idle_;
};

// A blocking GET for setup and metrics: (status, body). Throws Error when the server cannot
// be reached.
std::pair<int, std::string> http_get(const ServerAddress& address, const std::string& path,
                                     const std::string& api_key, double timeout_s);

}  // namespace dsi::bench
