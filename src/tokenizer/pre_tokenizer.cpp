#include "tokenizer/pre_tokenizer.h"

#include <utility>

#include "tokenizer/byte_level.h"
#include "tokenizer/unicode_props.h"
#include "tokenizer/utf8.h"

namespace dsi {
namespace {

using Segment = PreTokenizeScratch::Segment;

// The splitting regex built into the reference's ByteLevel pre-tokenizer (GPT-2's).
constexpr std::string_view gpt2_pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

SplitBehavior parse_behavior(const std::string& name, const std::string& what) {
  if (name == "Removed") return SplitBehavior::removed;
  if (name == "Isolated") return SplitBehavior::isolated;
  if (name == "MergedWithPrevious") return SplitBehavior::merged_with_previous;
  if (name == "MergedWithNext") return SplitBehavior::merged_with_next;
  if (name == "Contiguous") return SplitBehavior::contiguous;
  fail("{}: unsupported split behavior '{}'", what, name);
}

// Matches and the gaps between them, covering [span.begin, span.end).
void regex_segments(std::string_view text, Span span, const Regex& regex, RegexScratch& scratch,
                    std::vector<Segment>& out) {
  std::string_view piece = text.substr(span.begin, span.end - span.begin);
  size_t prev = 0;
  regex.for_each_match(piece, scratch, [&](size_t begin, size_t end) {
    if (prev != begin) out.push_back({span.begin + prev, span.begin + begin, false});
    out.push_back({span.begin + begin, span.begin + end, true});
    prev = end;
  });
  if (prev != piece.size()) out.push_back({span.begin + prev, span.end, false});
}

// Each numeric character is a match of its own; runs of other characters are gaps.
void digit_segments(std::string_view text, Span span, std::vector<Segment>& out) {
  size_t gap_begin = span.begin;
  size_t pos = span.begin;
  while (pos < span.end) {
    size_t start = pos;
    char32_t c = utf8::decode(text, pos);
    bool numeric = c < 0x80 ? (c >= '0' && c <= '9') : unicode::is_numeric(c);
    if (!numeric) continue;
    if (gap_begin < start) out.push_back({gap_begin, start, false});
    out.push_back({start, pos, true});
    gap_begin = pos;
  }
  if (gap_begin < span.end) out.push_back({gap_begin, span.end, false});
}

void push_nonempty(std::vector<Span>& out, size_t begin, size_t end) {
  if (begin < end) out.push_back({begin, end});
}

// The reference's NormalizedString::split, on segments already found.
void apply_behavior(std::vector<Segment>& segs, SplitBehavior behavior, bool invert, std::vector<Span>& out) {
  if (invert)
    for (Segment& s : segs) s.is_match = !s.is_match;
  switch (behavior) {
    case SplitBehavior::isolated:
      for (const Segment& s : segs) push_nonempty(out, s.begin, s.end);
      return;
    case SplitBehavior::removed:
      for (const Segment& s : segs)
        if (!s.is_match) push_nonempty(out, s.begin, s.end);
      return;
    default: break;
  }
  // The merging behaviors fold segments into groups, then drop empty groups.
  std::vector<Segment> groups;
  bool previous_match = false;
  if (behavior == SplitBehavior::merged_with_next) {
    for (size_t i = segs.size(); i-- > 0;) {
      const Segment& s = segs[i];
      if (s.is_match && !previous_match && !groups.empty())
        groups.back().begin = s.begin;
      else
        groups.push_back(s);
      previous_match = s.is_match;
    }
    for (size_t i = groups.size(); i-- > 0;) push_nonempty(out, groups[i].begin, groups[i].end);
    return;
  }
  for (const Segment& s : segs) {
    bool merge = behavior == SplitBehavior::contiguous ? s.is_match == previous_match
                                                       : s.is_match && !previous_match;
    if (merge && !groups.empty())
      groups.back().end = s.end;
    else
      groups.push_back(s);
    previous_match = s.is_match;
  }
  for (const Segment& g : groups) push_nonempty(out, g.begin, g.end);
}

}  // namespace

PreTokenizer PreTokenizer::from_json(const Json& j, std::string_view what) {
  PreTokenizer p;
  if (j.is_null()) return p;
  p.add_from_json(j, std::string(what));
  // A trailing ByteLevel is applied lazily by the model (see the header).
  if (!p.steps_.empty() && std::holds_alternative<ByteLevel>(p.steps_.back())) p.byte_level_output_ = true;
  return p;
}

void PreTokenizer::add_from_json(const Json& j, const std::string& what) {
  std::string type = json_get<std::string>(j, "type", what);
  if (type == "Sequence") {
    const Json& list = j.contains("pretokenizers") ? j["pretokenizers"] : Json();
    if (!list.is_array()) fail("{}: Sequence needs a 'pretokenizers' array", what);
    for (size_t i = 0; i < list.size(); ++i) add_from_json(list[i], fmt::format("{}.pretokenizers[{}]", what, i));
  } else if (type == "Split") {
    if (!j.contains("pattern")) fail("{}: missing field 'pattern'", what);
    steps_.push_back(Split{Pattern::from_json(j["pattern"], what + ".pattern"),
                           parse_behavior(json_get<std::string>(j, "behavior", what), what),
                           json_get_opt<bool>(j, "invert", what).value_or(false)});
  } else if (type == "Digits") {
    steps_.push_back(Digits{json_get_opt<bool>(j, "individual_digits", what).value_or(false)});
  } else if (type == "ByteLevel") {
    steps_.push_back(ByteLevel{json_get_opt<bool>(j, "add_prefix_space", what).value_or(true),
                               json_get_opt<bool>(j, "use_regex", what).value_or(true)});
    if (std::get<ByteLevel>(steps_.back()).use_regex && !gpt2_regex_) gpt2_regex_ = std::make_shared<Regex>(gpt2_pattern);
  } else {
    fail("{}: unsupported pre-tokenizer type '{}' (supported: Sequence, Split, Digits, ByteLevel)", what, type);
  }
}

std::string_view PreTokenizer::pre_tokenize(std::string_view text, PreTokenizeScratch& scratch) const {
  std::vector<Span>& spans = scratch.spans;
  std::vector<Span>& next = scratch.next_spans;
  spans.clear();
  if (text.empty()) return text;
  spans.push_back({0, text.size()});
  std::string_view view = text;

  auto split_all = [&](auto&& segment_fn, SplitBehavior behavior, bool invert) {
    next.clear();
    for (const Span& span : spans) {
      scratch.segments.clear();
      segment_fn(span, scratch.segments);
      apply_behavior(scratch.segments, behavior, invert, next);
    }
    std::swap(spans, next);
  };
  // Rebuilds the buffer from the current pieces; `edit` appends one piece's new bytes.
  auto rewrite = [&](auto&& edit) {
    std::string rebuilt;
    rebuilt.reserve(view.size() + spans.size());
    next.clear();
    for (const Span& span : spans) {
      size_t begin = rebuilt.size();
      edit(rebuilt, view.substr(span.begin, span.end - span.begin));
      next.push_back({begin, rebuilt.size()});
    }
    scratch.buffer = std::move(rebuilt);
    std::swap(spans, next);
    view = scratch.buffer;
  };

  for (size_t i = 0; i < steps_.size(); ++i) {
    const Step& step = steps_[i];
    if (const auto* split = std::get_if<Split>(&step)) {
      split_all([&](Span span, std::vector<Segment>& segs) {
        regex_segments(view, span, split->pattern.regex(), scratch.regex, segs);
      }, split->behavior, split->invert);
    } else if (const auto* digits = std::get_if<Digits>(&step)) {
      split_all([&](Span span, std::vector<Segment>& segs) { digit_segments(view, span, segs); },
                digits->individual ? SplitBehavior::isolated : SplitBehavior::contiguous, false);
    } else if (const auto* bl = std::get_if<ByteLevel>(&step)) {
      if (bl->add_prefix_space) {
        rewrite([](std::string& out, std::string_view piece) {
          if (piece.front() != ' ') out += ' ';
          out += piece;
        });
      }
      if (bl->use_regex) {
        split_all([&](Span span, std::vector<Segment>& segs) {
          regex_segments(view, span, *gpt2_regex_, scratch.regex, segs);
        }, SplitBehavior::isolated, false);
      }
      bool last = i + 1 == steps_.size();
      if (!last) rewrite([](std::string& out, std::string_view piece) { byte_level::append_encoded(out, piece); });
    }
  }
  return view;
}

}  // namespace dsi
