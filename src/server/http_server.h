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

  // Thread-safe. Draining: stop accepting, close idle connections, close each busy one after
  // its response. close_all: close every connection now (in-flight responses are cut).
  void begin_drain();
  void close_all();
  bool draining() const { return draining_.load(); }

  // For connections.
  const HttpLimits& limits() const { return limits_; }
  ServerMetrics& metrics() { return metrics_; }
  void handle(const std::shared_ptr<HttpConnection>& connection, HttpRequest&& request) {
    handler_(connection, std::move(request));
  }
  void forget(HttpConnection* connection);

 private:
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
  std::atomic<bool> draining_{false};
  std::mutex connections_mutex_;
  std::unordered_map<HttpConnection*, std::weak_ptr<HttpConnection>> connections_;
};

}  // namespace dsi::server
