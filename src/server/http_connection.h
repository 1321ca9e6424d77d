#pragma once
// One client connection: HTTP/1.1 with keep-alive on Boost.Beast over Asio. It reads a request
// (size limits, timeouts for idle, slow and stalled clients; framing errors, http_framing.h,
// answered 400 and the connection closed), hands it to the server's handler and writes the
// handler's response: a whole body or an SSE event stream (chunked); for HEAD, the headers
// only. While a response is in progress it keeps a read pending so a client that goes away is
// noticed at once, not at the next write; the handler hears of it through on_disconnect. The
// server's shutdown state (http_server.h) decides what happens between requests.
//
// Threads: every method, and every callback it makes, runs on the connection's strand
// (executor()); post to it from elsewhere. A handler must answer each request exactly once:
// send(), or begin_event_stream() ... end_event_stream().
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/beast.h"
#include "core/json.h"

namespace dsi::server {

using HttpRequest = http::request<http::string_body>;

inline std::string_view to_std(beast::string_view s) { return {s.data(), s.size()}; }

struct HttpLimits {
  uint32_t max_header_bytes = 64 * 1024;
  uint64_t max_body_bytes = 16 * 1024 * 1024;
  double keep_alive_timeout_s = 60;  // idle between requests before the server closes
  double read_timeout_s = 30;        // to receive a whole request once its first byte came
  double write_timeout_s = 60;       // one write may wait this long for a client that does not read
};

class HttpServer;

class HttpConnection : public std::enable_shared_from_this<HttpConnection> {
 public:
  HttpConnection(tcp::socket socket, HttpServer& server);
  ~HttpConnection();
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  void start();
  net::any_io_executor executor() { return socket_.get_executor(); }

  // --- response API, for the handler (strand only) ---
  // The route the request was dispatched to ("/v1/completions"), for the response metrics.
  void set_route(std::string route) { route_ = std::move(route); }
  void send(int status, std::string body, std::string_view content_type = "application/json");
  void send_json(int status, const Json& body);
  // A header line for this request's response (before it starts), e.g. Allow on a 405.
  void add_header(std::string_view name, std::string_view value);
  void begin_event_stream();                 // 200, text/event-stream, chunked
  void send_event(std::string_view data);    // one "data: <data>\n\n" event
  void end_event_stream();                   // the last chunk; the connection then reads the next request
  // Called once if the client goes away (or stops reading) before the response is complete.
  void on_disconnect(std::function<void()> fn) { on_disconnect_ = std::move(fn); }
  bool peer_gone() const { return closed_; }
  // Called once if the server cancels the request (a second signal, --shutdown-timeout): the
  // handler must end its response at once (a 503, or an error event and the stream's end).
  void on_cancel(std::function<void()> fn) { on_cancel_ = std::move(fn); }
  bool response_started() const { return response_started_; }
  // The server is draining or stopping: new work is answered 503.
  bool shutting_down() const;

  // --- for the server (strand only) ---
  // Cancelling: a request in progress is ended through on_cancel (closed when it has none).
  void cancel_request();
  // Stopped: a request in progress is ended through on_cancel; an idle connection or one
  // sending a request stays to be answered (503) until HttpServer closes it.
  void on_server_stopped();
  // Closes now; a response in progress is cut and on_disconnect fires.
  void close();

 private:
  enum class Phase { phase_idle, phase_reading, phase_handling, phase_closing };

  void wait_for_request();
  void read_header();
  void parse_header();
  void on_header(beast::error_code ec);
  void read_body();
  void on_body(beast::error_code ec);
  void dispatch();
  void fail_request(int status, const std::string& message);  // an error response, then close
  void watch_peer();
  bool response_flushed() const;
  void finish_response();
  void after_response();
  void queue_write(std::string bytes);
  void write_pending();
  void on_written(beast::error_code ec);
  void lingering_close();
  void discard_input();
  void arm_timer(double seconds);
  void disarm_timer();
  void on_timeout();
  void header_common(std::string& out, int status, std::string_view content_type);

  tcp::socket socket_;
  HttpServer& server_;
  net::steady_timer timer_;
  uint64_t timer_generation_ = 0;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  Phase phase_ = Phase::phase_idle;
  bool timed_out_ = false;
  bool closed_ = false;
  bool keep_alive_ = true;
  bool watching_ = false;       // a read that detects a vanished client is pending
  bool response_started_ = false;
  bool response_done_ = false;  // the handler has given the whole response
  bool write_in_flight_ = false;
  bool chunked_ = true;  // HTTP/1.1: streams use chunked encoding
  bool head_ = false;    // a HEAD request: headers only
  std::string raw_header_;     // the request header's bytes as received, for http_framing
  std::string extra_headers_;  // add_header's lines
  std::string pending_;  // bytes waiting for the write in flight
  std::string writing_;  // bytes of the write in flight
  std::string route_;
  std::function<void()> on_disconnect_;
  std::function<void()> on_cancel_;
};

}  // namespace dsi::server
