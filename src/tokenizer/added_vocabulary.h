#pragma once
// The `added_tokens` of tokenizer.json (special tokens such as <｜User｜> and other added
// tokens). They are found in the text before pre-tokenization, the way the reference does:
// tokens with normalized=false in the raw text, then, in the text between them, tokens with
// normalized=true in the normalized text; leftmost match first, longest among those starting
// there; single_word, lstrip and rstrip as the reference applies them.
//
// Immutable after loading; split() may be called from any number of threads.
#include <cstdint>
#include <array>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/string_map.h"

namespace dsi {

struct AddedToken {
  std::string content;
  // What decoding shows: the normalized content for normalized tokens (the reference keeps
  // that form so its decoder sees what the encoder matched), else the content.
  std::string decoded_form;
  int32_t id = 0;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;
  bool special = false;
};

// A byte trie over token contents, for leftmost-longest matching.
class TokenTrie {
 public:
  void insert(std::string_view content, int32_t token_index);
  // The longest token starting at text[pos]: its index and length, or nullopt.
  std::optional<std::pair<int32_t, size_t>> longest_at(std::string_view text, size_t pos) const;
  // The leftmost position >= pos where some token starts, and its longest match.
  bool find(std::string_view text, size_t pos, size_t& begin, size_t& end, int32_t& token_index) const;
  bool empty() const { return nodes_.size() <= 1; }

 private:
  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> children;  // sorted by byte
    int32_t token_index = -1;
  };
  std::vector<Node> nodes_{1};
  std::array<bool, 256> first_byte_{};
};

class AddedVocabulary {
 public:
  // `tokens` is the added_tokens array; the normalizer prepares the contents of normalized tokens.
  static AddedVocabulary from_json(const Json& tokens, const Normalizer& normalizer, std::string_view what);

  const std::vector<AddedToken>& tokens() const { return tokens_; }
  const AddedToken* find_content(std::string_view content) const;
  bool empty() const { return tokens_.empty(); }

  // Walks `text` in order: on_text(piece) for normalized text between added tokens (the piece
  // is valid only during the call), on_token(id) for each added token found.
  void split(std::string_view text, const Normalizer& normalizer, RegexScratch& scratch,
             const std::function<void(std::string_view)>& on_text,
             const std::function<void(int32_t)>& on_token) const;

 private:
  // The reference's find_matches on one string with one trie: pieces of plain text and tokens.
  void find_matches(std::string_view text, const TokenTrie& trie,
                    const std::function<void(std::string_view)>& on_text,
                    const std::function<void(int32_t)>& on_token) const;

  std::vector<AddedToken> tokens_;
  TokenIdMap index_of_content_;  // content -> index in tokens_ (the first one)
  TokenTrie raw_trie_;         // tokens with normalized = false
  TokenTrie normalized_trie_;  // tokens with normalized = true (normalized contents)
};

}  // namespace dsi
