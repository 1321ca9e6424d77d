#pragma once
// Internals of Tokenizer, shared by tokenizer.cpp (encode/decode), tokenizer_load.cpp and
// the streaming detokenizer. Immutable once built.
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "tokenizer/added_vocabulary.h"
#include "tokenizer/bpe.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/decoder.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/post_processor.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/tokenizer.h"

namespace dsi {

struct Tokenizer::Impl {
  Normalizer normalizer;
  PreTokenizer pre_tokenizer;
  BpeModel model;
  AddedVocabulary added;
  Decoder decoder;
  SpecialTokenWrap wrap;  // what add_special_tokens adds

  // By id, for every id below n_ids: the token string decode hands the decoder (the added
  // token's content, else the vocab entry), and with a byte-level decoder the bytes it stands
  // for. Ids with neither are unknown.
  int32_t n_ids = 0;
  std::vector<std::string> token_text;
  std::vector<std::string> token_bytes;
  std::vector<uint8_t> known;
  std::vector<uint8_t> special;

  std::optional<int32_t> bos_id;
  std::optional<int32_t> eos_id;
  std::unique_ptr<const ChatTemplate> chat_template;
  std::string chat_template_error;  // why the model's own template could not be parsed

  // Appends the ids of `text` (valid UTF-8) without special tokens.
  void encode_into(std::string_view text, std::vector<int32_t>& ids) const;
  // Appends the byte-level bytes of one id (byte-level decoders only); false if skipped.
  bool append_bytes(int32_t id, bool skip_special_tokens, std::string& out) const {
    if (id < 0 || id >= n_ids || !known[size_t(id)] || (skip_special_tokens && special[size_t(id)])) return false;
    out += token_bytes[size_t(id)];
    return true;
  }
  std::string decode_text(std::span<const int32_t> ids, bool skip_special_tokens) const;
};

}  // namespace dsi
