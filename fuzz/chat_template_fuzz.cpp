// libFuzzer target: the chat-template interpreter on arbitrary templates. The input is a
// template (up to the first NUL byte) and, after it, JSON for the messages. Whatever the input,
// parsing and rendering either succeed or throw dsi::Error; no crash, no unbounded loop or
// output (the interpreter's step and size limits).
#include <cstdint>
#include <string>

#include "core/error.h"
#include "core/json.h"
#include "tokenizer/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  size_t nul = input.find('\0');
  std::string_view source = input.substr(0, nul);
  dsi::Json messages = dsi::Json::array({{{"role", "user"}, {"content", "hi"}},
                                         {{"role", "assistant"}, {"content", nullptr}, {"tool_calls", dsi::Json::array()}}});
  if (nul != std::string_view::npos) {
    try {
      messages = dsi::parse_json_bounded<dsi::Json>(input.substr(nul + 1));  // bounded as every request is
    } catch (const dsi::JsonParseError&) {
    }
  }
  try {
    dsi::ChatTemplate chat(source, "fuzz", {{"bos_token", "<s>"}, {"eos_token", "</s>"}});
    chat.render(messages, true, dsi::Json(), dsi::Json::object());
  } catch (const dsi::Error&) {
  }
  return 0;
}
