#pragma once
// The listening side of the HTTP server: accepts connections on Asio (no thread per
// connection: a thousand idle keep-alive clients cost a socket and a timer each), keeps the
// set of open connections for draining, and hands complete requests to one handler.
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "server/http_connection.h"
#include "server/metrics.h"

namespace dsi::server {

// Shutdown, one state for every connection, moving forward only:
//   serving -> draining (first signal): no new connections; open ones stay and are answered,
//              new work with a 503; a response begun now says Connection: close; requests in
//              progress go on.
//              A connection whose response ends now closes, unless a request is already
//              pipelined behind it (it is answered).
//   draining -> cancelling (second signal, --shutdown-timeout): requests in progress are ended
//              at once through HttpConnection::on_cancel (an error event or a 503).
//   -> stopped (the engine has finished): a request still in progress is cancelled; a
//              connection idle since before the signal may still send one last request
//              (answered 503); every connection is closed after stop_grace_s at the latest,
//              and the process exits as soon as none is left.
enum class ServerState { state_serving, state_draining, state_cancelling, state_stopped };

class HttpServer {
 public:
  // Runs on the connection's strand; must answer through the connection (see HttpConnection).
  using Handler = std::function<void(const std::shared_ptr<HttpConnection>&, HttpRequest&&)>;

  HttpServer(net::io_context& ioc, const HttpLimits& limits, ServerMetrics& metrics, Handler handler);
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and listens now (an Error naming the address if that fails); connections are
  // accepted once the io_context runs. Port 0 picks a free port: see port().
  void listen(const std::string& host, uint16_t port);
  uint16_t port() const { return port_; }

  // The state changes (above). Thread-safe; a call that would go backwards does nothing.
  // close_all: every connection closes now (in-flight responses are cut), for an engine failure.
  void begin_drain();
  void cancel_requests();
  void stop();
  void close_all();
  ServerState state() const { return state_.load(); }
  static constexpr double stop_grace_s = 2;  // stopped: what connections get before they are closed

  // For connections.
  const HttpLimits& limits() const { return limits_; }
  ServerMetrics& metrics() { return metrics_; }
  void handle(const std::shared_ptr<HttpConnection>& connection, HttpRequest&& request) {
    handler_(connection, std::move(request));
  }
  void forget(HttpConnection* connection);

 private:
  bool advance(ServerState to);
  void close_acceptor();
  void accept();
  template <class Fn>
  void for_each_connection(Fn fn);

  net::io_context& ioc_;
  HttpLimits limits_;
  ServerMetrics& metrics_;
  Handler handler_;
  tcp::acceptor acceptor_;
  net::steady_timer accept_retry_;
  uint16_t port_ = 0;
  net::steady_timer stop_timer_;
  std::atomic<ServerState> state_{ServerState::state_serving};
  std::mutex connections_mutex_;
  std::unordered_map<HttpConnection*, std::weak_ptr<HttpConnection>> connections_;
};

}  // namespace dsi::server
