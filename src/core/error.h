#pragma once
// Errors a user can cause (a bad file, flag or request) are dsi::Error with a message that
// names the thing at fault; the edges (CLI, server) print them. Bugs stay assertions.
#include <fmt/format.h>

#include <stdexcept>
#include <string>
#include <utility>

namespace dsi {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

template <class... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

// Prefixes the message of any Error thrown by fn with context ("file x.safetensors: ...").
template <class Fn>
decltype(auto) with_context(const std::string& context, Fn&& fn) {
  try {
    return std::forward<Fn>(fn)();
  } catch (const Error& e) {
    throw Error(context + ": " + e.what());
  }
}

}  // namespace dsi
