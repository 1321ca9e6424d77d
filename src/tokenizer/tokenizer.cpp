#include "tokenizer/tokenizer.h"

#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/utf8.h"

namespace dsi {
namespace {

// Per-call working memory of encode (each call owns one, so calls never share state).
struct EncodeScratch {
  PreTokenizeScratch pre;
  BpeScratch bpe;
};

}  // namespace

void Tokenizer::Impl::encode_into(std::string_view text, std::vector<int32_t>& ids) const {
  EncodeScratch scratch;
  bool byte_level = pre_tokenizer.byte_level_output();
  auto on_text = [&](std::string_view piece) {
    std::string_view buffer = pre_tokenizer.pre_tokenize(piece, scratch.pre);
    for (const Span& span : scratch.pre.spans)
      model.tokenize(buffer.substr(span.begin, span.end - span.begin), byte_level, scratch.bpe, ids);
  };
  auto on_token = [&](int32_t id) { ids.push_back(id); };
  added.split(text, normalizer, scratch.pre.regex, on_text, on_token);
}

std::string Tokenizer::Impl::decode_text(std::span<const int32_t> ids, bool skip_special_tokens) const {
  if (decoder.is_byte_level()) {
    std::string bytes;
    for (int32_t id : ids) append_bytes(id, skip_special_tokens, bytes);
    return utf8::lossy(bytes);
  }
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (id < 0 || id >= n_ids || !known[size_t(id)] || (skip_special_tokens && special[size_t(id)])) continue;
    tokens.push_back(token_text[size_t(id)]);
  }
  RegexScratch scratch;
  return decoder.decode(std::move(tokens), scratch);
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  size_t valid = utf8::valid_prefix_length(text);
  if (valid != text.size()) fail("encode: text is not valid UTF-8 (bad byte at offset {})", valid);
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 8);
  if (add_special_tokens) ids = impl_->wrap.prefix;
  impl_->encode_into(text, ids);
  if (add_special_tokens) ids.insert(ids.end(), impl_->wrap.suffix.begin(), impl_->wrap.suffix.end());
  return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  return impl_->decode_text(ids, skip_special_tokens);
}

namespace {

const ChatTemplate& chat_template_of(const Tokenizer::Impl& t) {
  if (t.chat_template) return *t.chat_template;
  if (!t.chat_template_error.empty()) fail("{}", t.chat_template_error);
  fail("this tokenizer has no chat template (give one with --chat-template FILE)");
}

}  // namespace

std::string Tokenizer::apply_chat_template(const Json& messages, bool add_generation_prompt, const Json& tools,
                                           const Json& extra_vars) const {
  return chat_template_of(*impl_).render(messages, add_generation_prompt, tools, extra_vars);
}

std::string Tokenizer::apply_chat_template(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                                           const nlohmann::ordered_json& tools,
                                           const nlohmann::ordered_json& extra_vars) const {
  return chat_template_of(*impl_).render(messages, add_generation_prompt, tools, extra_vars);
}

bool Tokenizer::has_chat_template() const { return impl_->chat_template != nullptr; }
std::optional<int32_t> Tokenizer::bos_token_id() const { return impl_->bos_id; }
std::optional<int32_t> Tokenizer::eos_token_id() const { return impl_->eos_id; }

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && id < impl_->n_ids && impl_->special[size_t(id)];
}

bool Tokenizer::is_known(int32_t id) const { return id >= 0 && id < impl_->n_ids && impl_->known[size_t(id)]; }

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  if (const AddedToken* t = impl_->added.find_content(token)) return t->id;
  return impl_->model.token_to_id(token);
}

std::optional<std::string> Tokenizer::id_to_token(int32_t id) const {
  if (!is_known(id)) return std::nullopt;
  return impl_->token_text[size_t(id)];
}

int32_t Tokenizer::vocab_size() const { return impl_->n_ids; }

}  // namespace dsi
