#pragma once
// Streaming detokenization of one generated sequence: push() each new id and get the text
// that became final, never a partial UTF-8 character; text that may still be the start of a
// stop string is held back until it is known not to be one. When a stop string appears, the
// text ends just before it (as the OpenAI API does) and the sequence is over.
//
// Everything returned, concatenated, equals tokenizer.decode(all pushed ids) cut before the
// first stop string. With a byte-level decoder (every DeepSeek tokenizer) that holds exactly;
// with other decoders the prompt's last ids give the first tokens their context (a leading
// space, say) and the text is emitted as the decoded prefix grows.
//
// One per sequence, used by one thread at a time; it keeps its own copy of the Tokenizer
// handle, so the tokenizer outlives it.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace dsi {

struct DetokenizedText {
  std::string text;     // text that became final (may be empty)
  bool stopped = false;  // a stop string matched (now or before): the sequence is over
  int stop_index = -1;   // which stop string (its index in the constructor's list), when stopped
};

class IncrementalDetokenizer {
 public:
  IncrementalDetokenizer(Tokenizer tokenizer, bool skip_special_tokens, std::vector<std::string> stop_strings = {},
                         std::span<const int32_t> prompt_tail_ids = {});

  // Adds one generated id. After a stop, returns empty text with stopped set.
  DetokenizedText push(int32_t id);
  // Ends the sequence: returns everything still held back (a truncated character at the very
  // end becomes U+FFFD, as decode() gives it).
  DetokenizedText finish();

  bool stopped() const { return stopped_; }

 private:
  // Passes final text through the stop-string filter into `out`.
  void emit(std::string_view text, bool at_end, DetokenizedText& out);
  void generic_step(bool at_end, std::string& text);

  Tokenizer tokenizer_;
  bool skip_special_tokens_;
  std::vector<std::string> stop_strings_;
  bool byte_level_;
  bool stopped_ = false;
  int stop_index_ = -1;
  std::string pending_bytes_;  // byte-level path: a truncated UTF-8 character
  std::string held_;           // final text that could still begin a stop string
  // Generic path: ids from prefix_offset_ are the decoding window; text up to read_offset_
  // has been emitted.
  std::vector<int32_t> ids_;
  size_t prefix_offset_ = 0;
  size_t read_offset_ = 0;
};

}  // namespace dsi
