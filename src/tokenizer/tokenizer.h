#pragma once
// The tokenizer of a DeepSeek model (V2, V2.5, V3, R1): text <-> ids exactly as the Hugging
// Face `tokenizers` library computes them from the model's tokenizer.json, BOS handling and
// the chat template from its tokenizer_config.json.
//
// Ownership and threads: a Tokenizer is an immutable value that shares its loaded data
// (copying one is cheap). Every const method may be called concurrently from any number of
// threads; nothing is cached or mutated after loading.
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"

namespace dsi {

class ChatTemplate;

class Tokenizer {
 public:
  // Loads dir/tokenizer.json and dir/tokenizer_config.json (the chat template comes from
  // chat_template_file if given, else dir/chat_template.jinja if present, else the config's
  // "chat_template"). Errors name the file and the unsupported feature or bad field; a model
  // template the interpreter cannot parse only makes apply_chat_template fail (with why).
  static Tokenizer from_dir(const std::string& dir, const std::string& chat_template_file = "");

  // The DeepSeek-V3 tokenizer linked into the binary (assets/tokenizer/deepseek-v3): needs no
  // files at run time. Parses about 8 MB of JSON, so load once and share.
  static Tokenizer embedded_default(const std::string& chat_template_file = "");

  // From the two documents' text; `what` prefixes error messages. An empty config is allowed.
  static Tokenizer from_json_text(std::string_view tokenizer_json, std::string_view config_json,
                                  const std::string& what, const std::string& chat_template_source = "");

  // Ids of `text` (valid UTF-8, else an Error). add_special_tokens adds what
  // tokenizer_config.json asks for (add_bos_token / add_eos_token) or, when it does not say,
  // what tokenizer.json's post_processor adds.
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const;

  // Text of `ids`, like the reference's decode: ids the tokenizer does not know (the model's
  // vocab_size is often larger) decode to nothing; bytes that do not form UTF-8 become U+FFFD.
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens) const;

  // Renders the chat template. messages: array of {role, content, ...}; tools: null or an
  // array; extra_vars: an object of further template variables (chat_template_kwargs).
  // An Error when the tokenizer has no template or the template fails (raise_exception, a
  // type error, an unsupported construct).
  std::string apply_chat_template(const Json& messages, bool add_generation_prompt, const Json& tools,
                                  const Json& extra_vars) const;
  // The same from an order-preserving document (tojson then keeps the caller's key order).
  std::string apply_chat_template(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                                  const nlohmann::ordered_json& tools,
                                  const nlohmann::ordered_json& extra_vars) const;
  // True when a template was loaded (a model template that failed to parse is not; then
  // apply_chat_template reports the parse error).
  bool has_chat_template() const;

  std::optional<int32_t> bos_token_id() const;
  std::optional<int32_t> eos_token_id() const;
  // An added token marked "special" (skip_special_tokens drops it); false for unknown ids.
  bool is_special(int32_t id) const;
  bool is_known(int32_t id) const;
  std::optional<int32_t> token_to_id(std::string_view token) const;
  // The vocab string of an id (byte-level form, e.g. "Ġhello"), or nullopt.
  std::optional<std::string> id_to_token(int32_t id) const;
  // One past the largest id of the vocab and the added tokens (128815 for DeepSeek-V3, as the reference counts).
  int32_t vocab_size() const;

  struct Impl;

 private:
  friend class IncrementalDetokenizer;
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

}  // namespace dsi
