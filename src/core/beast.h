#pragma once
// Boost.Asio and Boost.Beast (header-only), for the HTTP server and the bench client, with the
// short names both use.
// <utility> first: Boost 1.74's asio/awaitable.hpp uses std::exchange without including it.
#include <utility>

// GCC 12 with sanitizers sees a false "maybe uninitialized" in Beast's parser
// (boost::optional): silenced for these headers only (clang, the fuzz build, has no such
// warning and would warn about the unknown name).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

namespace dsi {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

}  // namespace dsi
