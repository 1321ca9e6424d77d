#pragma once
// The `decoder` of tokenizer.json: ByteLevel, Replace, Strip, Fuse, ByteFallback and
// Sequence of them, applied to the list of token strings as the reference's decode_chain does,
// then joined. With no decoder the tokens are joined with spaces (the reference's default).
//
// Immutable after loading; decode() may be called from any number of threads.
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/json.h"
#include "tokenizer/pattern.h"

namespace dsi {

class Decoder {
 public:
  static Decoder from_json(const Json& j, std::string_view what = "decoder");

  // True when decoding is exactly: concatenate each token's byte-level bytes (or, for tokens
  // outside the alphabet, their own bytes), then read them as lossy UTF-8. The tokenizer and
  // the streaming detokenizer then work on bytes directly.
  bool is_byte_level() const { return present_ && steps_.size() == 1 && std::holds_alternative<ByteLevel>(steps_[0]); }

  std::string decode(std::vector<std::string> tokens, RegexScratch& scratch) const;

 private:
  struct ByteLevel {};
  struct Replace {
    Pattern pattern;
    std::string content;
  };
  struct Strip {
    std::string content;  // one character
    size_t start;
    size_t stop;
  };
  struct Fuse {};
  struct ByteFallback {};
  using Step = std::variant<ByteLevel, Replace, Strip, Fuse, ByteFallback>;

  void add_from_json(const Json& j, const std::string& what);

  bool present_ = false;
  std::vector<Step> steps_;
};

}  // namespace dsi
