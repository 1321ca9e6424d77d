#include "tokenizer/added_vocabulary.h"

#include <algorithm>

#include "tokenizer/unicode_props.h"
#include "tokenizer/utf8.h"

namespace dsi {
namespace {

// The character ending at byte `end` of text (end > 0).
char32_t char_before(std::string_view text, size_t end) {
  size_t start = end - 1;
  while (start > 0 && (uint8_t(text[start]) & 0xC0) == 0x80) --start;
  return utf8::decode(text, start);
}

// Start of the run of white space that ends at `end`.
size_t white_space_run_start(std::string_view text, size_t end) {
  while (end > 0) {
    size_t start = end - 1;
    while (start > 0 && (uint8_t(text[start]) & 0xC0) == 0x80) --start;
    size_t pos = start;
    if (!unicode::is_white_space(utf8::decode(text, pos))) break;
    end = start;
  }
  return end;
}

// End of the run of white space that starts at `begin`.
size_t white_space_run_end(std::string_view text, size_t begin) {
  while (begin < text.size()) {
    size_t pos = begin;
    if (!unicode::is_white_space(utf8::decode(text, pos))) break;
    begin = pos;
  }
  return begin;
}

}  // namespace

void TokenTrie::insert(std::string_view content, int32_t token_index) {
  if (content.empty()) return;
  int32_t node = 0;
  for (char ch : content) {
    auto b = uint8_t(ch);
    auto& children = nodes_[size_t(node)].children;
    auto it = std::lower_bound(children.begin(), children.end(), b,
                               [](const std::pair<uint8_t, int32_t>& e, uint8_t v) { return e.first < v; });
    if (it != children.end() && it->first == b) {
      node = it->second;
    } else {
      auto child = int32_t(nodes_.size());
      children.insert(it, {b, child});
      nodes_.emplace_back();
      node = child;
    }
  }
  // The first token with a given content wins, as in the reference's pattern list.
  if (nodes_[size_t(node)].token_index < 0) nodes_[size_t(node)].token_index = token_index;
  first_byte_[uint8_t(content[0])] = true;
}

std::optional<std::pair<int32_t, size_t>> TokenTrie::longest_at(std::string_view text, size_t pos) const {
  std::optional<std::pair<int32_t, size_t>> best;
  int32_t node = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    auto b = uint8_t(text[i]);
    const auto& children = nodes_[size_t(node)].children;
    auto it = std::lower_bound(children.begin(), children.end(), b,
                               [](const std::pair<uint8_t, int32_t>& e, uint8_t v) { return e.first < v; });
    if (it == children.end() || it->first != b) break;
    node = it->second;
    if (nodes_[size_t(node)].token_index >= 0) best = std::make_pair(nodes_[size_t(node)].token_index, i + 1 - pos);
  }
  return best;
}

bool TokenTrie::find(std::string_view text, size_t pos, size_t& begin, size_t& end, int32_t& token_index) const {
  if (empty()) return false;
  for (size_t i = pos; i < text.size(); ++i) {
    if (!first_byte_[uint8_t(text[i])]) continue;
    if (auto m = longest_at(text, i)) {
      begin = i;
      end = i + m->second;
      token_index = m->first;
      return true;
    }
  }
  return false;
}

AddedVocabulary AddedVocabulary::from_json(const Json& tokens, const Normalizer& normalizer, std::string_view what) {
  AddedVocabulary v;
  if (tokens.is_null()) return v;
  if (!tokens.is_array()) fail("{}: expected an array", what);
  RegexScratch scratch;
  for (size_t i = 0; i < tokens.size(); ++i) {
    std::string item = fmt::format("{}[{}]", what, i);
    const Json& t = tokens[i];
    AddedToken a;
    a.content = json_get<std::string>(t, "content", item);
    int64_t id = json_get<int64_t>(t, "id", item);
    if (id < 0 || id >= (int64_t(1) << 24)) fail("{}: id {} out of range", item, id);
    a.id = int32_t(id);
    a.single_word = json_get_opt<bool>(t, "single_word", item).value_or(false);
    a.lstrip = json_get_opt<bool>(t, "lstrip", item).value_or(false);
    a.rstrip = json_get_opt<bool>(t, "rstrip", item).value_or(false);
    a.special = json_get_opt<bool>(t, "special", item).value_or(false);
    a.normalized = json_get_opt<bool>(t, "normalized", item).value_or(!a.special);
    if (a.content.empty()) continue;  // the reference ignores empty tokens
    if (!utf8::is_valid(a.content)) fail("{}: content is not valid UTF-8", item);
    auto index = int32_t(v.tokens_.size());
    if (a.normalized) {
      std::string normalized = a.content;
      normalizer.normalize(normalized, scratch);
      v.normalized_trie_.insert(normalized, index);
      a.decoded_form = std::move(normalized);
    } else {
      v.raw_trie_.insert(a.content, index);
      a.decoded_form = a.content;
    }
    v.index_of_content_.emplace(a.content, index);
    v.tokens_.push_back(std::move(a));
  }
  return v;
}

const AddedToken* AddedVocabulary::find_content(std::string_view content) const {
  auto it = index_of_content_.find(content);
  return it == index_of_content_.end() ? nullptr : &tokens_[size_t(it->second)];
}

void AddedVocabulary::find_matches(std::string_view text, const TokenTrie& trie,
                                   const std::function<void(std::string_view)>& on_text,
                                   const std::function<void(int32_t)>& on_token) const {
  size_t emitted = 0;  // start of the text not yet handed out
  size_t search = 0;   // where the matcher resumes: after the previous match, kept or not
  size_t begin = 0, end = 0;
  int32_t index = -1;
  while (search < text.size() && trie.find(text, search, begin, end, index)) {
    search = end;
    const AddedToken& token = tokens_[size_t(index)];
    if (token.single_word) {
      bool space_before = begin == 0 || !unicode::is_word_char(char_before(text, begin));
      bool space_after = true;
      if (end < text.size()) {
        size_t pos = end;
        space_after = !unicode::is_word_char(utf8::decode(text, pos));
      }
      if (!space_before || !space_after) continue;
    }
    if (token.lstrip) begin = std::max(white_space_run_start(text, begin), emitted);
    if (token.rstrip) end = white_space_run_end(text, end);
    if (emitted < begin) on_text(text.substr(emitted, begin - emitted));
    on_token(token.id);
    emitted = end;
  }
  if (emitted < text.size()) on_text(text.substr(emitted));
}

void AddedVocabulary::split(std::string_view text, const Normalizer& normalizer, RegexScratch& scratch,
                            const std::function<void(std::string_view)>& on_text,
                            const std::function<void(int32_t)>& on_token) const {
  std::string normalized;
  auto second_pass = [&](std::string_view piece) {
    std::string_view view = piece;
    if (!normalizer.is_identity()) {
      normalized.assign(piece);
      normalizer.normalize(normalized, scratch);
      view = normalized;
    }
    find_matches(view, normalized_trie_, on_text, on_token);
  };
  find_matches(text, raw_trie_, second_pass, on_token);
}

}  // namespace dsi
