// The framing checks of http_framing.h on parsed headers and raw bytes, and the bounded
// preprocessing pool.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>

#include "server/http_framing.h"
#include "server/work_pool.h"

namespace dsi::server {
namespace {

// Parses a request header with Beast, as the connection does, then checks its framing: the
// error that the connection answers 400, Beast's own or the check's.
std::optional<std::string> framing_of(const std::string& raw) {
  http::request_parser<http::string_body> parser;
  parser.eager(false);
  beast::error_code ec;
  size_t n = parser.put(net::buffer(raw), ec);
  if (ec) return "Beast: " + ec.message();
  EXPECT_TRUE(parser.is_header_done()) << raw;
  if (auto raw_error = raw_header_framing_error(std::string_view(raw).substr(0, n))) return raw_error;
  return header_framing_error(parser.get().base());
}

std::string post(const std::string& fields) { return "POST /v1/completions HTTP/1.1\r\nHost: x\r\n" + fields + "\r\n"; }

TEST(HttpFraming, AcceptsUnambiguousFraming) {
  EXPECT_EQ(framing_of(post("Content-Length: 12\r\n")), std::nullopt);
  EXPECT_EQ(framing_of(post("Content-Length:  12 \r\n")), std::nullopt);
  EXPECT_EQ(framing_of(post("Transfer-Encoding: chunked\r\n")), std::nullopt);
  EXPECT_EQ(framing_of(post("Transfer-Encoding: CHUNKED\r\n")), std::nullopt);
  EXPECT_EQ(framing_of("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"), std::nullopt);
  EXPECT_EQ(framing_of("GET /health HTTP/1.0\r\n\r\n"), std::nullopt);
}

TEST(HttpFraming, RefusesTransferCodingsOtherThanOneChunked) {
  for (const char* coding : {"xchunked", "identity", "chunked, gzip", "gzip", "gzip, chunked", "chunked, chunked",
                             "chunked;a=b", "chunkedx"}) {
    auto error = framing_of(post(std::string("Transfer-Encoding: ") + coding + "\r\n"));
    ASSERT_TRUE(error) << coding;
    EXPECT_NE(error->find("Transfer-Encoding"), std::string::npos) << *error;  // ours, or Beast's "bad Transfer-Encoding"
  }
  EXPECT_TRUE(framing_of(post("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n")));
  EXPECT_TRUE(framing_of(post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n")));
  auto error = framing_of("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n");
  ASSERT_TRUE(error);
  EXPECT_NE(error->find("HTTP/1.0"), std::string::npos) << *error;
}

TEST(HttpFraming, RefusesContentLengthWithTransferEncoding) {
  // Beast refuses one order itself; the check refuses both, whatever the parser does.
  http::request<http::string_body> request{http::verb::post, "/", 11};
  request.set(http::field::transfer_encoding, "chunked");
  request.set(http::field::content_length, "5");
  auto error = header_framing_error(request.base());
  ASSERT_TRUE(error);
  EXPECT_NE(error->find("both"), std::string::npos) << *error;
}

TEST(HttpFraming, RefusesRepeatedOrListContentLength) {
  EXPECT_TRUE(framing_of(post("Content-Length: 3\r\nContent-Length: 3\r\n")));
  http::request<http::string_body> request{http::verb::post, "/", 11};
  request.insert(http::field::content_length, "3, 3");
  EXPECT_TRUE(header_framing_error(request.base()));
}

TEST(HttpFraming, RefusesObsFold) {
  EXPECT_TRUE(raw_header_framing_error(post("X-A: a\r\n b\r\nContent-Length: 3\r\n")));
  EXPECT_TRUE(raw_header_framing_error(post("Content-Length:\r\n\t3\r\n")));
  EXPECT_TRUE(raw_header_framing_error("POST / HTTP/1.1\r\n Host: x\r\n\r\n"));
  EXPECT_FALSE(raw_header_framing_error(post("X-A: a b\t c\r\n")));
}

TEST(WorkPool, RunsJobsAndRefusesBeyondItsQueue) {
  std::mutex mutex;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> n_done{0};
  {
    WorkPool pool(1, 2);
    auto blocker = [&] {
      std::unique_lock lock(mutex);
      cv.wait(lock, [&] { return release; });
      ++n_done;
    };
    ASSERT_TRUE(pool.try_post(blocker));
    // The blocker may still be queued or already running: fill the queue until refused.
    int n_queued = 0;
    while (pool.try_post([&] { ++n_done; })) ++n_queued;
    EXPECT_GE(n_queued, 1);
    EXPECT_LE(n_queued, 2);
    {
      std::lock_guard lock(mutex);
      release = true;
    }
    cv.notify_all();
    // The destructor runs what is queued.
    n_queued += 1;
    EXPECT_LE(n_done.load(), n_queued);
  }
  EXPECT_GE(n_done.load(), 2);
}

}  // namespace
}  // namespace dsi::server
