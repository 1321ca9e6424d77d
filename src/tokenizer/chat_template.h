#pragma once
// A model's chat template (Jinja, from tokenizer_config.json or a file) rendered the way
// Hugging Face transformers' apply_chat_template renders it: variables messages, tools (None
// when absent), add_generation_prompt, the special tokens (bos_token, eos_token, ...) and any
// extra variables; trim_blocks and lstrip_blocks on; tojson without HTML escaping.
//
// Immutable after construction; render() may be called from any number of threads.
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/json.h"

namespace dsi {

namespace jinja {
class Template;
}

class ChatTemplate {
 public:
  // `what` names the template's origin in errors ("chat template of tokenizer_config.json").
  // special_tokens: (name, text) pairs such as ("bos_token", "<｜begin▁of▁sentence｜>").
  ChatTemplate(std::string_view source, std::string what,
               std::vector<std::pair<std::string, std::string>> special_tokens);
  ~ChatTemplate();

  std::string render(const Json& messages, bool add_generation_prompt, const Json& tools,
                     const Json& extra_vars) const;
  std::string render(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                     const nlohmann::ordered_json& tools, const nlohmann::ordered_json& extra_vars) const;

 private:
  template <class J>
  std::string render_any(const J& messages, bool add_generation_prompt, const J& tools, const J& extra_vars) const;

  std::string what_;
  std::unique_ptr<const jinja::Template> template_;
  std::vector<std::pair<std::string, std::string>> special_tokens_;
};

}  // namespace dsi
