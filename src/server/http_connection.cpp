#include "server/http_connection.h"

#include <fmt/format.h>

#include <chrono>

#include "core/log.h"
#include "server/api_error.h"
#include "server/http_request_parser.h"
#include "server/http_framing.h"
#include "server/http_server.h"

namespace dsi::server {

namespace {

bool is_disconnect(const beast::error_code& ec) {
  return ec == http::error::end_of_stream || ec == net::error::eof || ec == net::error::connection_reset ||
         ec == net::error::broken_pipe || ec == net::error::connection_aborted;
}

}  // namespace

HttpConnection::HttpConnection(tcp::socket socket, HttpServer& server)
    : socket_(std::move(socket)), server_(server), timer_(socket_.get_executor()) {
  server_.metrics().connection_opened();
}

HttpConnection::~HttpConnection() {
  server_.forget(this);
  server_.metrics().connection_closed();
}

bool HttpConnection::shutting_down() const { return server_.state() != ServerState::state_serving; }

void HttpConnection::start() {
  net::dispatch(executor(), [self = shared_from_this()] { self->wait_for_request(); });
}

// ---- reading ----

void HttpConnection::wait_for_request() {
  phase_ = Phase::phase_idle;
  if (closed_) return;
  if (buffer_.size() > 0) return read_header();  // a pipelined request is already here
  // Waiting for readability costs no buffer: idle keep-alive connections stay cheap.
  arm_timer(server_.limits().keep_alive_timeout_s);
  socket_.async_wait(tcp::socket::wait_read, [self = shared_from_this()](beast::error_code ec) {
    if (self->closed_) return;
    if (ec) return self->close();
    self->read_header();
  });
}

void HttpConnection::read_header() {
  phase_ = Phase::phase_reading;
  timed_out_ = false;
  parser_.emplace();
  configure_request_parser(*parser_, server_.limits());
  raw_header_.clear();
  arm_timer(server_.limits().read_timeout_s);
  parse_header();
}

// Beast's async_read_header, done here so that the header's raw bytes can be checked
// (http_framing.h: Beast joins folded lines before anyone sees them).
void HttpConnection::parse_header() {
  // RFC 9112 section 2.2: empty lines before a request line are ignored (some clients send a
  // CRLF after a POST body).
  if (!parser_->got_some()) {
    std::string_view data(static_cast<const char*>(buffer_.data().data()), buffer_.size());
    size_t n_empty = 0;
    while (data.substr(n_empty, 2) == "\r\n") n_empty += 2;
    buffer_.consume(n_empty);
  }
  beast::error_code ec;
  if (buffer_.size() > 0) {
    size_t n = parser_->put(buffer_.data(), ec);
    raw_header_.append(static_cast<const char*>(buffer_.data().data()), n);
    buffer_.consume(n);
    if (!ec && !parser_->is_header_done()) ec = http::error::need_more;
  } else {
    ec = http::error::need_more;
  }
  if (!ec) return on_header({});
  if (ec != http::error::need_more) return on_body(ec);
  if (buffer_.size() >= server_.limits().max_header_bytes) return on_body(http::error::header_limit);
  socket_.async_read_some(buffer_.prepare(16 * 1024), [self = shared_from_this()](beast::error_code e, size_t n) {
    if (self->closed_) return;
    self->buffer_.commit(n);
    if (e == net::error::eof && self->parser_->got_some()) e = http::error::partial_message;
    if (e) return self->on_body(e);
    self->parse_header();
  });
}

void HttpConnection::on_header(beast::error_code ec) {
  if (closed_) return;
  if (ec) return on_body(ec);  // the same error handling
  // Every framing error closes the connection: what follows cannot be trusted to be a request.
  std::optional<std::string> framing = raw_header_framing_error(raw_header_);
  if (!framing) framing = header_framing_error(parser_->get().base());
  if (framing) return fail_request(400, "malformed HTTP request: " + *framing);
  const auto& req = parser_->get();
  if (beast::iequals(req[http::field::expect], "100-continue") && !parser_->is_done()) {
    // curl waits a second for this before sending a large body.
    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    beast::error_code wec;
    net::write(socket_, net::buffer(kContinue.data(), kContinue.size()), wec);
    if (wec) return close();
  }
  read_body();
}

void HttpConnection::read_body() {
  if (parser_->is_done()) return dispatch();
  http::async_read(socket_, buffer_, *parser_,
                   [self = shared_from_this()](beast::error_code ec, size_t) { self->on_body(ec); });
}

void HttpConnection::on_body(beast::error_code ec) {
  if (closed_) return;
  if (!ec) return dispatch();
  if (timed_out_) {
    bool got_some = buffer_.size() > 0 || (parser_ && parser_->got_some());
    if (!got_some) return close();
    return fail_request(408, fmt::format("timed out after {} s waiting for the rest of the request",
                                         server_.limits().read_timeout_s));
  }
  if (is_disconnect(ec) || ec == net::error::operation_aborted) return close();
  if (ec == http::error::body_limit)
    return fail_request(413, fmt::format("request body too large: the limit is {} bytes (--max-request-body-bytes)",
                                         server_.limits().max_body_bytes));
  if (ec == http::error::header_limit)
    return fail_request(431, fmt::format("request header too large: the limit is {} bytes",
                                         server_.limits().max_header_bytes));
  fail_request(400, fmt::format("malformed HTTP request: {}", ec.message()));
}

void HttpConnection::dispatch() {
  disarm_timer();
  phase_ = Phase::phase_handling;
  response_started_ = response_done_ = false;
  route_ = "other";
  extra_headers_.clear();
  on_cancel_ = nullptr;
  HttpRequest request = parser_->release();
  head_ = request.method() == http::verb::head;
  parser_.reset();
  keep_alive_ = request.keep_alive();
  chunked_ = request.version() >= 11;
  if (!chunked_) keep_alive_ = false;  // HTTP/1.0: streams end by closing
  watch_peer();
  server_.handle(shared_from_this(), std::move(request));
}

void HttpConnection::fail_request(int status, const std::string& message) {
  disarm_timer();
  phase_ = Phase::phase_handling;
  response_started_ = response_done_ = false;
  keep_alive_ = false;  // the rest of the request cannot be parsed: this connection is done
  parser_.reset();
  send_json(status, error_json(status, message));
}

// A read kept pending while the response is produced: end of stream means the client left.
// Bytes that arrive (a pipelined next request) are kept for the next read.
void HttpConnection::watch_peer() {
  if (closed_ || watching_) return;
  if (buffer_.size() >= server_.limits().max_header_bytes) return;  // enough buffered; writes will notice a loss
  watching_ = true;
  socket_.async_read_some(buffer_.prepare(4096), [self = shared_from_this()](beast::error_code ec, size_t n) {
    self->watching_ = false;
    if (self->closed_) return;
    if (!ec) {
      self->buffer_.commit(n);
      if (self->response_flushed()) return self->after_response();
      return self->watch_peer();
    }
    if (ec == net::error::operation_aborted) {
      if (self->response_flushed()) self->after_response();
      return;
    }
    self->close();
  });
}

// ---- responding ----

void HttpConnection::header_common(std::string& out, int status, std::string_view content_type) {
  // A response begun while shutting down is the connection's last (see HttpServer's states).
  if (server_.state() != ServerState::state_serving) keep_alive_ = false;
  auto reason = http::obsolete_reason(http::int_to_status(unsigned(status)));
  fmt::format_to(std::back_inserter(out), "HTTP/1.1 {} {}\r\nServer: dsinfer\r\nContent-Type: {}\r\n", status,
                 std::string_view(reason.data(), reason.size()), content_type);
  out += keep_alive_ ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
  // RFC 7235 3.1: a 401 names the scheme it wants (ours: the API key as a bearer token).
  if (status == 401) out += "WWW-Authenticate: Bearer\r\n";
  out += extra_headers_;
  server_.metrics().count_response(route_, status);
}

void HttpConnection::send(int status, std::string body, std::string_view content_type) {
  if (response_started_) return;  // a handler bug would otherwise corrupt the stream
  response_started_ = response_done_ = true;
  std::string out;
  out.reserve(body.size() + 200);
  header_common(out, status, content_type);
  fmt::format_to(std::back_inserter(out), "Content-Length: {}\r\n\r\n", body.size());
  if (!head_) out += body;  // HEAD: the headers GET would send, Content-Length included
  queue_write(std::move(out));
}

void HttpConnection::add_header(std::string_view name, std::string_view value) {
  fmt::format_to(std::back_inserter(extra_headers_), "{}: {}\r\n", name, value);
}

void HttpConnection::send_json(int status, const Json& body) {
  // Replace invalid UTF-8 (it can only come from a client's own bytes echoed back) instead of throwing.
  send(status, body.dump(-1, ' ', false, Json::error_handler_t::replace));
}

void HttpConnection::begin_event_stream() {
  if (response_started_) return;
  response_started_ = true;
  std::string out;
  header_common(out, 200, "text/event-stream; charset=utf-8");
  out += "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n";
  out += chunked_ ? "Transfer-Encoding: chunked\r\n\r\n" : "\r\n";
  queue_write(std::move(out));
}

void HttpConnection::send_event(std::string_view data) {
  if (!response_started_ || response_done_) return;
  std::string out;
  const size_t size = data.size() + 8;  // "data: " + data + "\n\n"
  if (chunked_) fmt::format_to(std::back_inserter(out), "{:x}\r\n", size);
  out += "data: ";
  out += data;
  out += "\n\n";
  if (chunked_) out += "\r\n";
  queue_write(std::move(out));
}

void HttpConnection::end_event_stream() {
  if (!response_started_ || response_done_) return;
  response_done_ = true;
  queue_write(chunked_ ? "0\r\n\r\n" : "");
}

void HttpConnection::queue_write(std::string bytes) {
  if (closed_) return;
  pending_ += bytes;
  if (!write_in_flight_) write_pending();
}

void HttpConnection::write_pending() {
  if (pending_.empty()) {
    if (response_done_) finish_response();
    return;
  }
  writing_.swap(pending_);
  pending_.clear();
  write_in_flight_ = true;
  arm_timer(server_.limits().write_timeout_s);
  net::async_write(socket_, net::buffer(writing_),
                   [self = shared_from_this()](beast::error_code ec, size_t) { self->on_written(ec); });
}

void HttpConnection::on_written(beast::error_code ec) {
  write_in_flight_ = false;
  if (closed_) return;
  if (ec) return close();
  writing_.clear();
  disarm_timer();
  write_pending();
}

bool HttpConnection::response_flushed() const {
  return phase_ == Phase::phase_handling && response_done_ && !write_in_flight_ && pending_.empty();
}

void HttpConnection::finish_response() {
  on_disconnect_ = nullptr;  // complete: a later disconnect is no longer the handler's business
  on_cancel_ = nullptr;
  if (watching_) {
    socket_.cancel();  // the watch's completion continues with after_response
    return;
  }
  after_response();
}

void HttpConnection::after_response() {
  if (closed_) return;
  // Shutting down, a response that said keep-alive (it began before the signal) is followed
  // by the request already pipelined behind it, if any, answered (a 503 for new work); else
  // the connection closes. Connections idle since before the signal stay (see on_server_stopped).
  if (!keep_alive_ || (shutting_down() && buffer_.size() == 0)) return lingering_close();
  wait_for_request();
}

// ---- closing and timers ----

// Half-close, then read and drop what the client still sends until it closes too (or 2 s):
// closing with unread input would reset the connection and could destroy the response
// (a 413) before the client reads it.
void HttpConnection::lingering_close() {
  phase_ = Phase::phase_closing;
  on_disconnect_ = nullptr;
  beast::error_code ec;
  socket_.shutdown(tcp::socket::shutdown_send, ec);
  if (ec) return close();
  arm_timer(2.0);
  discard_input();
}

void HttpConnection::discard_input() {
  buffer_.consume(buffer_.size());
  socket_.async_read_some(buffer_.prepare(4096), [self = shared_from_this()](beast::error_code ec, size_t) {
    if (self->closed_) return;
    if (ec) return self->close();
    self->discard_input();
  });
}

void HttpConnection::cancel_request() {
  if (closed_ || phase_ != Phase::phase_handling || response_done_) return;
  if (!on_cancel_) return close();  // no way to end it cleanly
  auto fn = std::move(on_cancel_);
  on_cancel_ = nullptr;
  fn();
}

void HttpConnection::on_server_stopped() {
  if (closed_) return;
  switch (phase_) {
    case Phase::phase_handling:
      return cancel_request();  // after_response then closes
    case Phase::phase_idle:     // idle since before the signal: a last request is answered 503
    case Phase::phase_reading:  // once whole, the request is answered 503
    case Phase::phase_closing:
      return;  // HttpServer closes what is left after stop_grace_s
  }
}

void HttpConnection::close() {
  if (closed_) return;
  closed_ = true;
  disarm_timer();
  beast::error_code ec;
  socket_.shutdown(tcp::socket::shutdown_both, ec);
  socket_.close(ec);
  if (on_disconnect_) {
    auto fn = std::move(on_disconnect_);
    on_disconnect_ = nullptr;
    fn();
  }
}

void HttpConnection::arm_timer(double seconds) {
  uint64_t generation = ++timer_generation_;
  timer_.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(seconds)));
  timer_.async_wait([self = shared_from_this(), generation](beast::error_code ec) {
    if (ec || generation != self->timer_generation_ || self->closed_) return;
    self->on_timeout();
  });
}

void HttpConnection::disarm_timer() {
  ++timer_generation_;
  timer_.cancel();
}

void HttpConnection::on_timeout() {
  switch (phase_) {
    case Phase::phase_reading: {
      timed_out_ = true;
      beast::error_code ec;
      socket_.cancel(ec);  // the read completes with operation_aborted and answers 408
      return;
    }
    case Phase::phase_handling:
      spdlog::debug("client stopped reading for {} s: closing", server_.limits().write_timeout_s);
      return close();
    case Phase::phase_idle:
    case Phase::phase_closing:
      return close();
  }
}

}  // namespace dsi::server
