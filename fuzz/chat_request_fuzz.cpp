// libFuzzer target: a POST /v1/chat/completions body, parsed as the server parses it
// (parse_request_body, then parse_chat_request) and, when accepted, rendered with the
// embedded DeepSeek-V3 chat template and tokenized, as the handler does. Whatever the bytes,
// the result is a prompt, a 400 ApiError, or a chat-template Error: no crash, no other
// exception.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "core/error.h"
#include "server/api_error.h"
#include "server/openai_request.h"
#include "tokenizer/tokenizer.h"

namespace {

const dsi::Tokenizer& tokenizer() {
  static const dsi::Tokenizer tok = dsi::Tokenizer::embedded_default();
  return tok;
}

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "property violated: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  tokenizer();  // 8 MB of JSON: once, not in the first input's time
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  dsi::server::ChatRequest r;
  try {
    r = dsi::server::parse_chat_request(dsi::server::parse_request_body(body), body);
  } catch (const dsi::server::ApiError& e) {
    check(e.status() == 400, "a rejected body is a 400");
    return 0;
  }
  check(r.messages.is_array() && !r.messages.empty(), "messages");
  try {
    std::string text = tokenizer().apply_chat_template(r.messages, r.add_generation_prompt, r.tools, r.template_kwargs);
    tokenizer().encode(text, false);
  } catch (const dsi::Error&) {
    // A template error (raise_exception, a missing field): the server's 400.
  }
  return 0;
}
