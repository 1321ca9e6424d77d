#include "tokenizer/bpe.h"

#include <algorithm>

#include "tokenizer/byte_level.h"
#include "tokenizer/utf8.h"

namespace dsi {
namespace {

// Ids beyond this are not a real vocabulary; refusing them keeps the id table small.
constexpr int64_t max_token_id = int64_t(1) << 24;

bool heap_after(const BpeScratch::Candidate& a, const BpeScratch::Candidate& b) {
  return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;  // min-heap on (rank, pos)
}

}  // namespace

BpeModel BpeModel::from_json(const Json& model, std::string_view what_view) {
  std::string what(what_view);
  if (!model.is_object()) fail("{}: expected an object", what);
  std::string type = json_get_opt<std::string>(model, "type", what).value_or("BPE");
  if (type != "BPE") fail("{}: unsupported model type '{}' (supported: BPE)", what, type);
  for (const char* unsupported : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (auto v = json_get_opt<std::string>(model, unsupported, what); v && !v->empty())
      fail("{}: unsupported option '{}' = \"{}\"", what, unsupported, *v);
  if (auto dropout = json_get_opt<double>(model, "dropout", what); dropout && *dropout > 0)
    fail("{}: unsupported option 'dropout' = {} (random merges are not reproducible)", what, *dropout);

  BpeModel m;
  m.fuse_unk_ = json_get_opt<bool>(model, "fuse_unk", what).value_or(false);
  m.byte_fallback_ = json_get_opt<bool>(model, "byte_fallback", what).value_or(false);
  m.ignore_merges_ = json_get_opt<bool>(model, "ignore_merges", what).value_or(false);

  if (!model.contains("vocab") || !model["vocab"].is_object()) fail("{}: missing object 'vocab'", what);
  const Json& vocab = model["vocab"];
  m.vocab_.reserve(vocab.size());
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it->is_number_integer()) fail("{}.vocab: token '{}' has a non-integer id", what, it.key());
    int64_t id = it->get<int64_t>();
    if (id < 0 || id >= max_token_id) fail("{}.vocab: token '{}' has id {} out of range", what, it.key(), id);
    m.vocab_.emplace(it.key(), int32_t(id));
    if (size_t(id) >= m.tokens_.size()) {
      m.tokens_.resize(size_t(id) + 1);
      m.has_id_.resize(size_t(id) + 1);
    }
    m.tokens_[size_t(id)] = it.key();
    m.has_id_[size_t(id)] = true;
  }

  if (auto unk = json_get_opt<std::string>(model, "unk_token", what)) {
    auto id = m.token_to_id(*unk);
    if (!id) fail("{}: unk_token '{}' is not in the vocab", what, *unk);
    m.unk_id_ = *id;
  }
  for (int b = 0; b < 256; ++b) {
    std::string ch;
    utf8::append(ch, byte_level::byte_to_char(uint8_t(b)));
    m.byte_ids_[size_t(b)] = m.token_to_id(ch).value_or(-1);
    m.byte_fallback_ids_[size_t(b)] = m.token_to_id(fmt::format("<0x{:02X}>", b)).value_or(-1);
  }

  m.load_merges(model, what);
  return m;
}

void BpeModel::load_merges(const Json& model, const std::string& what) {
  if (!model.contains("merges") || !model["merges"].is_array()) fail("{}: missing array 'merges'", what);
  const Json& merges = model["merges"];
  merges_.reserve(merges.size());
  std::string left, right;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const Json& entry = merges[rank];
    if (entry.is_string()) {
      // "a b": the legacy form, exactly one space.
      const std::string& s = entry.get_ref<const std::string&>();
      size_t space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
        fail("{}.merges[{}]: '{}' is not two tokens separated by one space", what, rank, s);
      left.assign(s, 0, space);
      right.assign(s, space + 1);
    } else if (entry.is_array() && entry.size() == 2 && entry[0].is_string() && entry[1].is_string()) {
      left = entry[0].get<std::string>();
      right = entry[1].get<std::string>();
    } else {
      fail("{}.merges[{}]: expected \"a b\" or [\"a\", \"b\"], got {}", what, rank, entry.dump());
    }
    auto left_id = token_to_id(left);
    auto right_id = token_to_id(right);
    auto new_id = token_to_id(left + right);
    if (!left_id || !right_id || !new_id)
      fail("{}.merges[{}]: '{}' + '{}': token '{}' is not in the vocab", what, rank, left, right,
           !left_id ? left : !right_id ? right : left + right);
    merges_.insert(*left_id, *right_id, Merge{int32_t(rank), *new_id});
  }
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || size_t(id) >= tokens_.size() || !has_id_[size_t(id)]) return nullptr;
  return &tokens_[size_t(id)];
}

void BpeModel::add_symbol(BpeScratch& scratch, int32_t id, int32_t len) const {
  auto& symbols = scratch.symbols;
  auto n = int32_t(symbols.size());
  if (n > 0) symbols.back().next = n;
  symbols.push_back({id, n - 1, -1, len});
}

void BpeModel::tokenize(std::string_view word, bool byte_level, BpeScratch& scratch,
                        std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    std::string_view whole = word;
    if (byte_level) {
      scratch.mapped.clear();
      byte_level::append_encoded(scratch.mapped, word);
      whole = scratch.mapped;
    }
    if (auto id = token_to_id(whole)) {
      out.push_back(*id);
      return;
    }
  }

  // Initial symbols: one per character (byte), with the reference's handling of characters
  // missing from the vocab (byte fallback, then unk, fused or not, else dropped).
  scratch.symbols.clear();
  std::optional<std::pair<int32_t, int32_t>> pending_unk;  // (id, bytes)
  std::string ch;
  size_t pos = 0;
  while (pos < word.size()) {
    size_t start = pos;
    int32_t id = -1;
    if (byte_level) {
      id = byte_ids_[uint8_t(word[pos])];
      ++pos;
    } else {
      pos += utf8::lead_length(uint8_t(word[pos]));
      if (auto found = token_to_id(word.substr(start, pos - start))) id = *found;
    }
    auto len = int32_t(pos - start);
    if (id >= 0) {
      if (pending_unk) {
        add_symbol(scratch, pending_unk->first, pending_unk->second);
        pending_unk.reset();
      }
      add_symbol(scratch, id, len);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (size_t i = start; i < pos; ++i) all = all && byte_fallback_ids_[uint8_t(word[i])] >= 0;
      if (all) {
        for (size_t i = start; i < pos; ++i) add_symbol(scratch, byte_fallback_ids_[uint8_t(word[i])], 1);
        continue;
      }
    }
    if (unk_id_) {
      if (pending_unk && fuse_unk_) {
        pending_unk->second += len;
      } else {
        if (pending_unk) add_symbol(scratch, pending_unk->first, pending_unk->second);
        pending_unk = std::make_pair(*unk_id_, len);
      }
    }
  }
  if (pending_unk) add_symbol(scratch, pending_unk->first, pending_unk->second);

  merge(scratch);
  for (const auto& s : scratch.symbols)
    if (s.len != 0) out.push_back(s.id);
}

void BpeModel::merge(BpeScratch& scratch) const {
  auto& symbols = scratch.symbols;
  auto& heap = scratch.heap;
  heap.clear();
  for (size_t i = 0; i + 1 < symbols.size(); ++i)
    if (const Merge* m = merges_.find(symbols[i].id, symbols[i + 1].id))
      heap.push_back({m->rank, int32_t(i), m->new_id});
  std::make_heap(heap.begin(), heap.end(), heap_after);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), heap_after);
    BpeScratch::Candidate top = heap.back();
    heap.pop_back();
    auto& cur = symbols[size_t(top.pos)];
    if (cur.len == 0 || cur.next < 0) continue;
    auto& right = symbols[size_t(cur.next)];
    // Skip entries made stale by an earlier merge (the check the reference makes).
    const Merge* still = merges_.find(cur.id, right.id);
    if (!still || still->new_id != top.new_id) continue;
    cur.id = top.new_id;
    cur.len += right.len;
    cur.next = right.next;
    right.len = 0;
    if (cur.next >= 0) symbols[size_t(cur.next)].prev = top.pos;
    if (cur.prev >= 0) {
      if (const Merge* m = merges_.find(symbols[size_t(cur.prev)].id, cur.id)) {
        heap.push_back({m->rank, cur.prev, m->new_id});
        std::push_heap(heap.begin(), heap.end(), heap_after);
      }
    }
    if (cur.next >= 0) {
      if (const Merge* m = merges_.find(cur.id, symbols[size_t(cur.next)].id)) {
        heap.push_back({m->rank, top.pos, m->new_id});
        std::push_heap(heap.begin(), heap.end(), heap_after);
      }
    }
  }
}

}  // namespace dsi
