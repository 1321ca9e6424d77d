#include "tokenizer/incremental_detokenizer.h"

#include <algorithm>

#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/utf8.h"

namespace dsi {

IncrementalDetokenizer::IncrementalDetokenizer(Tokenizer tokenizer, bool skip_special_tokens,
                                               std::vector<std::string> stop_strings,
                                               std::span<const int32_t> prompt_tail_ids)
    : tokenizer_(std::move(tokenizer)),
      skip_special_tokens_(skip_special_tokens),
      stop_strings_(std::move(stop_strings)) {
  byte_level_ = tokenizer_.impl_->decoder.is_byte_level();
  if (!byte_level_) {
    ids_.assign(prompt_tail_ids.begin(), prompt_tail_ids.end());
    read_offset_ = ids_.size();
  }
}

DetokenizedText IncrementalDetokenizer::push(int32_t id) {
  DetokenizedText out;
  if (stopped_) {
    out.stopped = true;
    out.stop_index = stop_index_;
    return out;
  }
  if (byte_level_) {
    if (!tokenizer_.impl_->append_bytes(id, skip_special_tokens_, pending_bytes_)) return out;
    // Everything but a truncated character at the end is final.
    size_t keep = utf8::truncated_tail_length(pending_bytes_);
    std::string text = utf8::lossy(std::string_view(pending_bytes_).substr(0, pending_bytes_.size() - keep));
    pending_bytes_.erase(0, pending_bytes_.size() - keep);
    emit(text, false, out);
    return out;
  }
  ids_.push_back(id);
  std::string text;
  generic_step(false, text);
  emit(text, false, out);
  return out;
}

DetokenizedText IncrementalDetokenizer::finish() {
  DetokenizedText out;
  if (stopped_) {
    out.stopped = true;
    out.stop_index = stop_index_;
    return out;
  }
  std::string text;
  if (byte_level_) {
    text = utf8::lossy(pending_bytes_);
    pending_bytes_.clear();
  } else {
    generic_step(true, text);
  }
  emit(text, true, out);
  return out;
}

void IncrementalDetokenizer::generic_step(bool at_end, std::string& text) {
  const Tokenizer::Impl& t = *tokenizer_.impl_;
  std::span<const int32_t> all(ids_);
  std::string prefix = t.decode_text(all.subspan(prefix_offset_, read_offset_ - prefix_offset_), skip_special_tokens_);
  std::string full = t.decode_text(all.subspan(prefix_offset_), skip_special_tokens_);
  // A trailing U+FFFD may be a character whose remaining bytes are still to come.
  bool incomplete = full.size() >= 3 && full.compare(full.size() - 3, 3, "\xEF\xBF\xBD") == 0;
  if (full.size() <= prefix.size() || (incomplete && !at_end)) return;
  text = full.substr(prefix.size());
  prefix_offset_ = read_offset_;
  read_offset_ = ids_.size();
}

void IncrementalDetokenizer::emit(std::string_view text, bool at_end, DetokenizedText& out) {
  held_ += text;
  // The stop string whose occurrence ends first (what a character-by-character stream meets).
  size_t best_start = std::string::npos, best_end = std::string::npos;
  for (size_t i = 0; i < stop_strings_.size(); ++i) {
    if (stop_strings_[i].empty()) continue;  // matches nothing (stop_index keeps the caller's numbering)
    size_t start = held_.find(stop_strings_[i]);
    if (start == std::string::npos) continue;
    size_t end = start + stop_strings_[i].size();
    if (end < best_end || (end == best_end && start < best_start)) {
      best_start = start;
      best_end = end;
      stop_index_ = int(i);
    }
  }
  if (best_start != std::string::npos) {
    out.text += held_.substr(0, best_start);
    held_.clear();
    stopped_ = true;
    out.stopped = true;
    out.stop_index = stop_index_;
    return;
  }
  size_t keep = 0;
  if (!at_end) {
    // The longest end of held_ that some stop string starts with.
    for (const std::string& s : stop_strings_) {
      if (s.empty()) continue;
      for (size_t n = std::min(s.size() - 1, held_.size()); n > keep; --n) {
        if (held_.compare(held_.size() - n, n, s, 0, n) == 0) {
          keep = n;
          break;
        }
      }
    }
  }
  out.text += held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
}

}  // namespace dsi
