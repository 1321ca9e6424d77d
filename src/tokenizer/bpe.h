#pragma once
// The BPE `model` of tokenizer.json: vocab, ranked merges (in both the "a b" string form and
// the ["a", "b"] pair form), unk_token / fuse_unk / byte_fallback / ignore_merges. A word is
// split into characters (or, for byte-level tokenizers, bytes seen through the byte-level
// alphabet), then the adjacent pair with the lowest merge rank is merged, leftmost first,
// until no pair merges: the same order as the reference's priority queue.
//
// Immutable after loading; tokenize() may be called from any number of threads, each with its
// own BpeScratch.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"
#include "tokenizer/pair_map.h"
#include "tokenizer/string_map.h"

namespace dsi {

// Per-thread working memory of BpeModel::tokenize().
struct BpeScratch {
  struct Symbol {
    int32_t id;
    int32_t prev;  // index of the previous live symbol, -1 at the start
    int32_t next;  // index of the next live symbol, -1 at the end
    int32_t len;   // bytes of the word it covers; 0 once merged into its left neighbour
  };
  struct Candidate {
    int32_t rank;
    int32_t pos;
    int32_t new_id;
  };
  std::vector<Symbol> symbols;
  std::vector<Candidate> heap;
  std::string mapped;
};

class BpeModel {
 public:
  // Errors name `what`.<field>: an unsupported option, a merge of unknown tokens, ...
  static BpeModel from_json(const Json& model, std::string_view what = "model");

  // Appends the ids of one pre-tokenized word. With `byte_level`, the word holds raw bytes,
  // each standing for its byte-level alphabet character.
  void tokenize(std::string_view word, bool byte_level, BpeScratch& scratch, std::vector<int32_t>& out) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  // The token of an id, or nullptr when the vocab has no such id.
  const std::string* id_to_token(int32_t id) const;
  // One past the largest id of the vocab.
  int32_t n_ids() const { return int32_t(tokens_.size()); }
  size_t vocab_entries() const { return vocab_.size(); }

 private:
  // merges: rank = position; a later duplicate of a pair replaces the earlier (as in the reference).
  void load_merges(const Json& model, const std::string& what);
  void add_symbol(BpeScratch& scratch, int32_t id, int32_t len) const;
  void merge(BpeScratch& scratch) const;

  TokenIdMap vocab_;
  std::vector<std::string> tokens_;  // by id
  std::vector<bool> has_id_;
  PairMap merges_;
  std::array<int32_t, 256> byte_ids_{};           // id of each byte's alphabet character, or -1
  std::array<int32_t, 256> byte_fallback_ids_{};  // id of "<0xAB>" tokens, or -1
  std::optional<int32_t> unk_id_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
};

}  // namespace dsi
