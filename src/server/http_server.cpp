#include "server/http_server.h"

#include <vector>

#include "core/error.h"
#include "core/log.h"

namespace dsi::server {

HttpServer::HttpServer(net::io_context& ioc, const HttpLimits& limits, ServerMetrics& metrics, Handler handler)
    : ioc_(ioc),
      limits_(limits),
      metrics_(metrics),
      handler_(std::move(handler)),
      acceptor_(net::make_strand(ioc)),
      accept_retry_(acceptor_.get_executor()),
      stop_timer_(acceptor_.get_executor()) {}

void HttpServer::listen(const std::string& host, uint16_t port) {
  beast::error_code ec;
  tcp::endpoint endpoint;
  auto address = net::ip::make_address(host, ec);
  if (!ec) {
    endpoint = tcp::endpoint(address, port);
  } else {
    tcp::resolver resolver(ioc_);
    auto results = resolver.resolve(host, std::to_string(port), ec);
    if (ec || results.empty()) fail("--host {}: cannot resolve the address: {}", host, ec.message());
    endpoint = results.begin()->endpoint();
  }
  auto check = [&](const char* what) {
    if (ec) fail("cannot listen on {}:{}: {} failed: {}", host, port, what, ec.message());
  };
  acceptor_.open(endpoint.protocol(), ec);
  check("open");
  acceptor_.set_option(net::socket_base::reuse_address(true), ec);
  check("setsockopt");
  acceptor_.bind(endpoint, ec);
  check("bind");
  acceptor_.listen(net::socket_base::max_listen_connections, ec);
  check("listen");
  port_ = acceptor_.local_endpoint().port();
  net::post(acceptor_.get_executor(), [this] { accept(); });
}

void HttpServer::accept() {
  if (!acceptor_.is_open()) return;
  // Each connection gets its own strand: its handlers never run concurrently, whatever the
  // number of I/O threads.
  acceptor_.async_accept(net::make_strand(ioc_), [this](beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !acceptor_.is_open()) return;
    if (ec) {
      // Out of file descriptors and the like: wait a little rather than spin.
      spdlog::warn("accept failed: {}; retrying in 100 ms", ec.message());
      accept_retry_.expires_after(std::chrono::milliseconds(100));
      accept_retry_.async_wait([this](beast::error_code e) {
        if (!e) accept();
      });
      return;
    }
    socket.set_option(tcp::no_delay(true), ec);  // SSE events are small and latency matters
    auto connection = std::make_shared<HttpConnection>(std::move(socket), *this);
    {
      std::lock_guard lock(connections_mutex_);
      connections_[connection.get()] = connection;
    }
    connection->start();
    accept();
  });
}

void HttpServer::forget(HttpConnection* connection) {
  std::lock_guard lock(connections_mutex_);
  connections_.erase(connection);
  // The last connection gone after the stop: the grace timer no longer keeps the io_context running.
  if (connections_.empty() && state() == ServerState::state_stopped)
    net::post(stop_timer_.get_executor(), [this] { stop_timer_.cancel(); });
}

template <class Fn>
void HttpServer::for_each_connection(Fn fn) {
  std::vector<std::shared_ptr<HttpConnection>> alive;
  {
    std::lock_guard lock(connections_mutex_);
    for (auto& [ptr, weak] : connections_)
      if (auto c = weak.lock()) alive.push_back(std::move(c));
  }
  for (auto& c : alive) net::post(c->executor(), [c, fn] { fn(*c); });
}

bool HttpServer::advance(ServerState to) {
  ServerState now = state_.load();
  while (now < to)
    if (state_.compare_exchange_weak(now, to)) return true;
  return false;
}

void HttpServer::close_acceptor() {
  net::post(acceptor_.get_executor(), [this] {
    beast::error_code ec;
    acceptor_.close(ec);
    accept_retry_.cancel();
  });
}

void HttpServer::begin_drain() {
  if (advance(ServerState::state_draining)) close_acceptor();
}

void HttpServer::cancel_requests() {
  advance(ServerState::state_draining);
  if (!advance(ServerState::state_cancelling)) return;
  close_acceptor();
  for_each_connection([](HttpConnection& c) { c.cancel_request(); });
}

void HttpServer::stop() {
  if (!advance(ServerState::state_stopped)) return;
  close_acceptor();
  net::post(stop_timer_.get_executor(), [this] {
    bool none_left;
    {
      std::lock_guard lock(connections_mutex_);
      none_left = connections_.empty();
    }
    if (none_left) return;
    stop_timer_.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(stop_grace_s)));
    stop_timer_.async_wait([this](beast::error_code ec) {
      if (!ec) for_each_connection([](HttpConnection& c) { c.close(); });
    });
  });
  for_each_connection([](HttpConnection& c) { c.on_server_stopped(); });
}

void HttpServer::close_all() {
  advance(ServerState::state_stopped);
  close_acceptor();
  for_each_connection([](HttpConnection& c) { c.close(); });
}

}  // namespace dsi::server
