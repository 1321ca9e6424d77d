#include "bench/stream_client.h"

#include <fmt/format.h>

#include <limits>

#include "core/error.h"
#include "core/json.h"

namespace dsi::bench {

ServerAddress parse_base_url(const std::string& url) {
  constexpr std::string_view kScheme = "http://";
  if (url.rfind(kScheme, 0) != 0)
    fail("--base-url {}: expected http://HOST[:PORT][/PATH] (https is not supported)", url);
  std::string rest = url.substr(kScheme.size());
  size_t slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  std::string path = slash == std::string::npos ? "" : rest.substr(slash);
  while (!path.empty() && path.back() == '/') path.pop_back();
  if (path.size() >= 3 && path.compare(path.size() - 3, 3, "/v1") == 0) path.resize(path.size() - 3);
  ServerAddress a;
  size_t colon = authority.rfind(':');
  if (colon != std::string::npos && authority.find(']', colon) == std::string::npos) {
    a.host = authority.substr(0, colon);
    a.port = authority.substr(colon + 1);
  } else {
    a.host = authority;
    a.port = "80";
  }
  if (a.host.size() > 2 && a.host.front() == '[' && a.host.back() == ']') a.host = a.host.substr(1, a.host.size() - 2);
  if (a.host.empty() || a.port.empty() || a.port.find_first_not_of("0123456789") != std::string::npos)
    fail("--base-url {}: cannot read the host and port", url);
  a.base_path = path;
  return a;
}

namespace {

double since(Clock::time_point t0, Clock::time_point t) { return std::chrono::duration<double>(t - t0).count(); }

// Text a streamed event carries: completions' choices[].text, chat's delta.content and
// delta.reasoning_content (reasoning is output too).
bool event_has_text(const Json& event) {
  auto choices = event.find("choices");
  if (choices == event.end() || !choices->is_array()) return false;
  for (const auto& c : *choices) {
    if (auto t = c.find("text"); t != c.end() && t->is_string() && !t->get_ref<const std::string&>().empty())
      return true;
    if (auto d = c.find("delta"); d != c.end() && d->is_object()) {
      for (const char* key : {"content", "reasoning_content"}) {
        auto v = d->find(key);
        if (v != d->end() && v->is_string() && !v->get_ref<const std::string&>().empty()) return true;
      }
      if (d->contains("tool_calls")) return true;
    }
  }
  return false;
}

}  // namespace

// One request, from connecting (or reusing a pooled connection) to the end of the stream.
class StreamOp : public std::enable_shared_from_this<StreamOp> {
 public:
  StreamOp(StreamClient& client, const std::string& path, std::string body, std::function<void(StreamResult&&)> done)
      : client_(client), done_(std::move(done)) {
    request_.method(http::verb::post);
    request_.target(client.address_.base_path + path);
    request_.version(11);
    request_.set(http::field::host, client.address_.host + ":" + client.address_.port);
    request_.set(http::field::content_type, "application/json");
    request_.set(http::field::accept, "text/event-stream");
    request_.set(http::field::user_agent, "dsinfer-bench");
    if (!client.api_key_.empty()) request_.set(http::field::authorization, "Bearer " + client.api_key_);
    request_.keep_alive(true);
    request_.body() = std::move(body);
    request_.prepare_payload();
  }

  void start() {
    start_time_ = Clock::now();
    result_.start = since(client_.t0_, start_time_);
    stream_ = client_.take_idle();
    if (stream_) {
      reused_ = true;
      return write();
    }
    connect();
  }

 private:
  void connect() {
    reused_ = false;
    stream_ = std::make_unique<beast::tcp_stream>(client_.ioc_);
    stream_->expires_after(timeout());
    stream_->async_connect(client_.endpoints_, [self = shared_from_this()](beast::error_code ec, const auto&) {
      if (ec) return self->finish_error("connect: " + ec.message());
      beast::error_code ignored;
      self->stream_->socket().set_option(tcp::no_delay(true), ignored);
      self->write();
    });
  }

  Clock::duration timeout() const {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(client_.timeout_s_)) -
           (Clock::now() - start_time_);
  }

  void write() {
    stream_->expires_after(timeout());
    http::async_write(*stream_, request_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->retry_or_fail("send: " + ec.message());
      self->parser_.emplace();
      // No limit; not boost::none, which Boost 1.74 compares as smaller than any Content-Length.
      self->parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
      self->read();
    });
  }

  // A pooled connection the server has closed meanwhile fails at once: try a fresh one.
  void retry_or_fail(const std::string& what) {
    if (reused_ && !got_bytes_) return connect();
    finish_error(what);
  }

  void read() {
    http::async_read_some(*stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, size_t n) {
      self->on_read(ec, n);
    });
  }

  void on_read(beast::error_code ec, size_t n) {
    if (n > 0) got_bytes_ = true;
    if (ec) {
      if (ec == beast::error::timeout) return finish_error(fmt::format("timed out after {} s", client_.timeout_s_));
      return retry_or_fail("receive: " + ec.message());
    }
    const auto now = Clock::now();
    if (parser_->is_header_done()) {
      result_.status = int(parser_->get().result_int());
      std::string& body = parser_->get().body();
      if (result_.status == 200) {
        pending_ += body;
        body.clear();
        if (!take_events(now)) return;
      }
    }
    if (!parser_->is_done()) return read();
    if (result_.status != 200) return finish_error(http_error());
    finish_ok(now);
  }

  // Consumes the complete SSE events in pending_; false when the stream reported an error.
  bool take_events(Clock::time_point now) {
    for (;;) {
      size_t end = pending_.find("\n\n");
      size_t sep = 2;
      if (size_t crlf = pending_.find("\r\n\r\n"); crlf != std::string::npos && crlf < end) {
        end = crlf;
        sep = 4;
      }
      if (end == std::string::npos) return true;
      std::string event = pending_.substr(0, end);
      pending_.erase(0, end + sep);
      for (size_t pos = 0; pos < event.size();) {
        size_t eol = event.find('\n', pos);
        if (eol == std::string::npos) eol = event.size();
        std::string_view line(event.data() + pos, eol - pos);
        pos = eol + 1;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.substr(0, 5) != "data:") continue;
        line.remove_prefix(5);
        if (!line.empty() && line.front() == ' ') line.remove_prefix(1);
        if (line == "[DONE]") continue;
        if (!on_event(line, now)) return false;
      }
    }
  }

  bool on_event(std::string_view data, Clock::time_point now) {
    Json j = Json::parse(data, nullptr, false);
    if (j.is_discarded()) {
      finish_error(fmt::format("unparsable event: {}", data.substr(0, 200)));
      return false;
    }
    if (j.contains("error")) {
      finish_error(fmt::format("error event: {}", j["error"].dump().substr(0, 300)));
      return false;
    }
    if (auto u = j.find("usage"); u != j.end() && u->is_object()) {
      result_.prompt_tokens = u->value("prompt_tokens", int64_t(-1));
      result_.output_tokens = u->value("completion_tokens", int64_t(-1));
    }
    if (event_has_text(j)) {
      ++result_.n_text_events;
      if (result_.ttft < 0) result_.ttft = since(start_time_, now);
      else result_.itl.push_back(since(last_event_, now));
      last_event_ = now;
    }
    return true;
  }

  std::string http_error() const {
    std::string body = parser_->get().body();
    Json j = Json::parse(body, nullptr, false);
    if (!j.is_discarded() && j.contains("error") && j["error"].is_object() && j["error"].contains("message"))
      body = j["error"]["message"].dump();
    return fmt::format("HTTP {}: {}", result_.status, body.substr(0, 300));
  }

  void finish_ok(Clock::time_point now) {
    if (done_called_) return;
    result_.ok = result_.ttft >= 0;
    if (!result_.ok) result_.error = "the stream ended without output";
    result_.e2e = since(start_time_, now);
    if (result_.output_tokens < 0) result_.output_tokens = result_.n_text_events;
    if (parser_->get().keep_alive()) {
      stream_->expires_never();
      client_.give_back(std::move(stream_));
    }
    complete();
  }

  void finish_error(std::string what) {
    if (done_called_) return;
    result_.ok = false;
    result_.error = std::move(what);
    result_.e2e = since(start_time_, Clock::now());
    if (stream_) {
      beast::error_code ignored;
      stream_->socket().shutdown(tcp::socket::shutdown_both, ignored);
      stream_->close();
    }
    complete();
  }

  void complete() {
    done_called_ = true;
    auto done = std::move(done_);
    done(std::move(result_));
  }

  StreamClient& client_;
  std::function<void(StreamResult&&)> done_;
  http::request<http::string_body> request_;
  std::unique_ptr<beast::tcp_stream> stream_;
  beast::flat_buffer buffer_;
  std::optional<http::response_parser<http::string_body>> parser_;
  std::string pending_;
  StreamResult result_;
  Clock::time_point start_time_, last_event_;
  bool reused_ = false;
  bool got_bytes_ = false;
  bool done_called_ = false;
};

StreamClient::StreamClient(net::io_context& ioc, const ServerAddress& address, std::string api_key, double timeout_s,
                           Clock::time_point t0)
    : ioc_(ioc), address_(address), api_key_(std::move(api_key)), timeout_s_(timeout_s), t0_(t0) {
  tcp::resolver resolver(ioc);
  beast::error_code ec;
  endpoints_ = resolver.resolve(address.host, address.port, ec);
  if (ec) fail("cannot resolve {}: {}", address.host, ec.message());
}

std::unique_ptr<beast::tcp_stream> StreamClient::take_idle() {
  if (idle_.empty()) return nullptr;
  auto s = std::move(idle_.back());
  idle_.pop_back();
  return s;
}

void StreamClient::post_stream(const std::string& path, std::string body, std::function<void(StreamResult&&)> done) {
  std::make_shared<StreamOp>(*this, path, std::move(body), std::move(done))->start();
}

std::pair<int, std::string> http_get(const ServerAddress& address, const std::string& path, const std::string& api_key,
                                     double timeout_s) {
  net::io_context ioc;
  beast::tcp_stream stream(ioc);
  tcp::resolver resolver(ioc);
  beast::error_code ec;
  auto endpoints = resolver.resolve(address.host, address.port, ec);
  if (ec) fail("cannot resolve {}: {}", address.host, ec.message());
  stream.expires_after(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s)));
  http::request<http::empty_body> req{http::verb::get, address.base_path + path, 11};
  req.set(http::field::host, address.host + ":" + address.port);
  req.set(http::field::user_agent, "dsinfer-bench");
  if (!api_key.empty()) req.set(http::field::authorization, "Bearer " + api_key);
  http::response_parser<http::string_body> res;
  res.body_limit(std::numeric_limits<std::uint64_t>::max());
  beast::flat_buffer buffer;
  // Synchronous calls on a tcp_stream ignore its timer, so run the async ones to completion.
  stream.async_connect(endpoints, [&](beast::error_code e, const auto&) {
    if (e) {
      ec = e;
      return;
    }
    http::async_write(stream, req, [&](beast::error_code we, size_t) {
      if (we) {
        ec = we;
        return;
      }
      http::async_read(stream, buffer, res, [&](beast::error_code re, size_t) { ec = re; });
    });
  });
  ioc.run();
  if (ec) fail("GET {}{}: {}", address.describe(), path, ec.message());
  return {int(res.get().result_int()), std::move(res.get().body())};
}

}  // namespace dsi::bench
