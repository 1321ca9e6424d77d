// libFuzzer target: a POST /v1/completions body, parsed as the server parses it
// (parse_request_body: nesting and numbers bounded; then parse_completion_request). Whatever
// the bytes, the result is a request or a 400 ApiError; no crash, no other exception, and an
// accepted request holds values inside the API's ranges.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "server/api_error.h"
#include "server/openai_request.h"

namespace {

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "property violated: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  try {
    dsi::server::CompletionRequest r = dsi::server::parse_completion_request(dsi::server::parse_request_body(body));
    check(!r.prompts.empty(), "a prompt");
    for (const auto& p : r.prompts) check(p.text ? !p.text->empty() : !p.ids.empty(), "no empty prompt");
    check(r.options.n >= 1 && r.options.max_tokens && *r.options.max_tokens >= 1, "n and max_tokens at least 1");
    check(r.options.sampling.min_tokens <= *r.options.max_tokens, "min_tokens <= max_tokens");
  } catch (const dsi::server::ApiError& e) {
    check(e.status() == 400, "a rejected body is a 400");
    check(std::string_view(e.what()).size() <= 2 * dsi::server::kMaxErrorMessageBytes, "error message bounded");
  }
  return 0;
}
