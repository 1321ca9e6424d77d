#pragma once
// The `pre_tokenizer` of tokenizer.json: Split (regex or literal, every delimiter behavior,
// invert), Digits, ByteLevel, and Sequence of them. It cuts a text into pieces; the model
// then tokenizes each piece on its own.
//
// Pieces are byte ranges of one buffer, so splitting never copies text. A ByteLevel step at
// the end of the chain is not applied to the text: the pieces stay raw bytes and
// `byte_level_output()` tells the BPE model to read them through the byte-level alphabet,
// which gives the same symbols without building the mapped strings.
//
// Immutable after loading; pre_tokenize() may be called from any number of threads, each with
// its own PreTokenizeScratch.
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/json.h"
#include "tokenizer/pattern.h"

namespace dsi {

// A piece: bytes [begin, end) of the buffer pre_tokenize() returns.
struct Span {
  size_t begin;
  size_t end;
};

// Per-thread working memory of pre_tokenize().
struct PreTokenizeScratch {
  RegexScratch regex;
  std::vector<Span> spans;
  std::vector<Span> next_spans;
  struct Segment {
    size_t begin;
    size_t end;
    bool is_match;
  };
  std::vector<Segment> segments;
  std::string buffer;  // used only when a step rewrites the text
};

// How a Split treats the delimiters it finds (the reference's SplitDelimiterBehavior).
enum class SplitBehavior { removed, isolated, merged_with_previous, merged_with_next, contiguous };

class PreTokenizer {
 public:
  // null gives a single piece per text; an unsupported type is an Error naming it.
  static PreTokenizer from_json(const Json& j, std::string_view what = "pre_tokenizer");

  // Cuts `text` into pieces, left in scratch.spans. Returns the buffer the spans index: `text`
  // itself, or scratch.buffer when a step rewrote the text.
  std::string_view pre_tokenize(std::string_view text, PreTokenizeScratch& scratch) const;

  // True when the pieces are raw bytes still to be mapped to the byte-level alphabet.
  bool byte_level_output() const { return byte_level_output_; }

 private:
  struct Split {
    Pattern pattern;
    SplitBehavior behavior;
    bool invert;
  };
  struct Digits {
    bool individual;
  };
  struct ByteLevel {
    bool add_prefix_space;
    bool use_regex;
  };
  using Step = std::variant<Split, Digits, ByteLevel>;

  void add_from_json(const Json& j, const std::string& what);

  std::vector<Step> steps_;
  std::shared_ptr<const Regex> gpt2_regex_;  // for ByteLevel steps with use_regex
  bool byte_level_output_ = false;
};

}  // namespace dsi
