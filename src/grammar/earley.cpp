#include "grammar/earley.h"

#include <algorithm>
#include <iterator>

#include "core/error.h"

namespace dsi::grammar {

namespace {

// Which items a set under construction holds: open addressing over (alt, dot, origin), reused
// by each thread from set to set (a generation stamp clears it in O(1)).
class ItemTable {
 public:
  void reset() {
    if (++generation_ == 0) std::fill(stamp_.begin(), stamp_.end(), 0), generation_ = 1;
    size_ = 0;
    if (slots_.empty()) grow(64);
  }
  // True when the item is new (and now recorded).
  bool insert(const EarleyItem& it) {
    if (2 * (size_ + 1) > slots_.size()) rehash();
    for (size_t h = hash(it) & (slots_.size() - 1);; h = (h + 1) & (slots_.size() - 1)) {
      if (stamp_[h] != generation_) {
        stamp_[h] = generation_;
        slots_[h] = it;
        ++size_;
        return true;
      }
      const EarleyItem& s = slots_[h];
      if (s.alt == it.alt && s.dot == it.dot && s.origin == it.origin) return false;
    }
  }

 private:
  static size_t hash(const EarleyItem& it) {
    uint64_t x = (uint64_t(it.alt) << 32 | it.dot) ^ (reinterpret_cast<uintptr_t>(it.origin) * 0x9E3779B97F4A7C15ull);
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9ull;
    return size_t(x ^ (x >> 32));
  }
  void grow(size_t n) {
    slots_.assign(n, {});
    stamp_.assign(n, 0);
  }
  void rehash() {
    std::vector<EarleyItem> live;
    for (size_t k = 0; k < slots_.size(); ++k)
      if (stamp_[k] == generation_) live.push_back(slots_[k]);
    grow(slots_.size() * 2);
    size_ = 0;
    for (const auto& it : live) insert(it);
  }
  std::vector<EarleyItem> slots_;
  std::vector<uint32_t> stamp_;
  uint32_t generation_ = 0;
  size_t size_ = 0;
};

thread_local ItemTable t_items;

}  // namespace

// The list of the outermost ~EarleySet on this thread (a plain pointer: nothing to destroy at
// thread exit, whatever order static and thread_local objects go in).
static thread_local std::vector<std::shared_ptr<const EarleySet>>* t_pending_sets = nullptr;

EarleySet::~EarleySet() {
  // Origins released here may be the last owners of theirs, and so on: a chain as long as the
  // output for right-recursive grammars. The outermost destructor frees them in a loop.
  if (t_pending_sets) {
    for (auto& d : deps) t_pending_sets->push_back(std::move(d));
    return;
  }
  std::vector<std::shared_ptr<const EarleySet>> pending(std::make_move_iterator(deps.begin()),
                                                        std::make_move_iterator(deps.end()));
  t_pending_sets = &pending;
  while (!pending.empty()) {
    std::shared_ptr<const EarleySet> p = std::move(pending.back());
    pending.pop_back();
    p.reset();
  }
  t_pending_sets = nullptr;
}

Earley::~Earley() = default;

Earley::Earley(const Cfg& cfg) : terminals_(cfg.terminals) {
  const size_t n_rules = cfg.rules.size();
  // Productive rules (they derive some byte string), to a fixed point; alternatives naming an
  // unproductive rule can never finish, and dropping them keeps every parse able to end.
  std::vector<char> productive(n_rules, 0);
  auto alt_productive = [&](const std::vector<CfgSymbol>& alt) {
    return std::all_of(alt.begin(), alt.end(), [&](CfgSymbol s) { return s.terminal() || productive[size_t(s.v)]; });
  };
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t r = 0; r < n_rules; ++r)
      if (!productive[r] && std::any_of(cfg.rules[r].alts.begin(), cfg.rules[r].alts.end(), alt_productive))
        productive[r] = 1, changed = true;
  }
  if (!productive[size_t(cfg.start)])
    fail("grammar: rule '{}' derives no string (every alternative recurses without end)",
         cfg.rules[size_t(cfg.start)].name);

  // Flatten: rule r's alternatives are contiguous; one more rule, S' ::= root, whose
  // completion from the first set is acceptance.
  for (size_t r = 0; r <= n_rules; ++r) {
    rule_first_alt_.push_back(uint32_t(alt_lhs_.size()));
    if (r == n_rules) {
      start_alt_ = uint32_t(alt_lhs_.size());
      alt_lhs_.push_back(int32_t(r));
      alt_begin_.push_back(uint32_t(syms_.size()));
      syms_.push_back(CfgSymbol::rule(cfg.start));
      continue;
    }
    for (const auto& alt : cfg.rules[r].alts) {
      if (!alt_productive(alt)) continue;
      alt_lhs_.push_back(int32_t(r));
      alt_begin_.push_back(uint32_t(syms_.size()));
      syms_.insert(syms_.end(), alt.begin(), alt.end());
    }
  }
  rule_first_alt_.push_back(uint32_t(alt_lhs_.size()));
  alt_begin_.push_back(uint32_t(syms_.size()));

  nullable_.assign(n_rules + 1, 0);
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t a = 0; a < alt_lhs_.size(); ++a) {
      if (nullable_[size_t(alt_lhs_[a])]) continue;
      bool all = true;
      for (uint32_t k = alt_begin_[a]; k < alt_begin_[a + 1] && all; ++k)
        all = !syms_[k].terminal() && nullable_[size_t(syms_[k].v)];
      if (all) nullable_[size_t(alt_lhs_[a])] = 1, changed = true;
    }
  }

  auto s = std::make_shared<EarleySet>();
  start_raw_ = s.get();
  t_items.reset();
  EarleyItem first{start_alt_, 0, s.get()};
  t_items.insert(first);
  s->items.push_back(first);
  if (!closure(*s))
    fail("grammar: its start predicts more than {} Earley items (too many alternatives at once for the matcher)",
         kMaxEarleyItems);
  start_ = intern(std::move(s));
}

bool Earley::closure(EarleySet& s) const {
  size_t work = 0;  // items offered, duplicates included: what a completion-heavy set costs
  auto add = [&](uint32_t alt, uint32_t dot, const EarleySet* origin) {
    ++work;
    EarleyItem it{alt, dot, origin};
    if (t_items.insert(it)) s.items.push_back(it);
  };
  for (size_t i = 0; i < s.items.size(); ++i) {
    if (s.items.size() > kMaxEarleyItems || work > kMaxEarleyWork) return false;
    const EarleyItem it = s.items[i];  // (a copy: add() may grow the vector)
    const uint32_t at = alt_begin_[it.alt] + it.dot;
    if (at < alt_begin_[it.alt + 1]) {
      const CfgSymbol sym = syms_[at];
      if (sym.terminal()) {
        s.scan_bytes |= terminals_[size_t(sym.terminal_index())];
        continue;
      }
      // Predict; over a nullable rule also advance at once (Aycock-Horspool), which stands for
      // every completion of it within this set.
      for (uint32_t b = rule_first_alt_[size_t(sym.v)]; b < rule_first_alt_[size_t(sym.v) + 1]; ++b) add(b, 0, &s);
      if (nullable_[size_t(sym.v)]) add(it.alt, it.dot + 1, it.origin);
      continue;
    }
    // Complete. One that began here derived the empty string: handled by the prediction.
    if (it.origin == &s) continue;
    const int32_t lhs = alt_lhs_[it.alt];
    const auto& w = it.origin->waiting;
    auto lo = std::lower_bound(w.begin(), w.end(), std::pair<int32_t, uint32_t>{lhs, 0});
    for (; lo != w.end() && lo->first == lhs; ++lo) {
      const EarleyItem& parent = it.origin->items[lo->second];
      add(parent.alt, parent.dot + 1, parent.origin);
    }
  }
  if (s.items.size() > kMaxEarleyItems || work > kMaxEarleyWork) return false;
  // Completed items have made their completions; what follows depends on the rest only.
  for (const EarleyItem& it : s.items)
    if (it.alt == start_alt_ && it.dot == 1 && it.origin == start_raw_) s.accepting = true;
  std::erase_if(s.items, [&](const EarleyItem& it) { return alt_begin_[it.alt] + it.dot == alt_begin_[it.alt + 1]; });
  // A canonical order (this set's own origin as 0), so equal sets have equal keys.
  auto origin_key = [&](const EarleyItem& it) {
    return it.origin == &s ? uintptr_t(0) : reinterpret_cast<uintptr_t>(it.origin);
  };
  std::sort(s.items.begin(), s.items.end(), [&](const EarleyItem& a, const EarleyItem& b) {
    if (a.alt != b.alt) return a.alt < b.alt;
    if (a.dot != b.dot) return a.dot < b.dot;
    return origin_key(a) < origin_key(b);
  });
  for (uint32_t i = 0; i < s.items.size(); ++i) {
    const EarleyItem& it = s.items[i];
    const CfgSymbol next = syms_[alt_begin_[it.alt] + it.dot];
    if (!next.terminal()) s.waiting.emplace_back(next.v, i);
    if (it.origin != &s && (s.deps.empty() || s.deps.back().get() != it.origin)) {
      auto dep = it.origin->shared_from_this();
      if (std::find(s.deps.begin(), s.deps.end(), dep) == s.deps.end()) s.deps.push_back(std::move(dep));
    }
  }
  std::sort(s.waiting.begin(), s.waiting.end());
  return true;
}

std::shared_ptr<const EarleySet> Earley::intern(std::shared_ptr<EarleySet> s) const {
  std::string key(1, s->accepting ? 'a' : '-');  // (acceptance came from completed items, now dropped)
  key.reserve(s->items.size() * 16 + 1);
  for (const EarleyItem& it : s->items) {
    const uintptr_t o = it.origin == s.get() ? 0 : reinterpret_cast<uintptr_t>(it.origin);
    key.append(reinterpret_cast<const char*>(&it.alt), sizeof it.alt);
    key.append(reinterpret_cast<const char*>(&it.dot), sizeof it.dot);
    key.append(reinterpret_cast<const char*>(&o), sizeof o);
  }
  std::lock_guard lock(mu_);
  auto& slot = interned_[key];
  if (auto existing = slot.lock()) return existing;  // (a live entry's origins are alive: its key is exact)
  slot = s;
  if (interned_.size() >= sweep_at_) {
    std::erase_if(interned_, [](const auto& kv) { return kv.second.expired(); });
    sweep_at_ = std::max<size_t>(1024, 2 * interned_.size());
  }
  return s;
}

size_t Earley::n_sets() const {
  std::lock_guard lock(mu_);
  return size_t(std::count_if(interned_.begin(), interned_.end(), [](const auto& kv) { return !kv.second.expired(); }));
}

std::shared_ptr<const EarleySet> Earley::step(const std::shared_ptr<const EarleySet>& s, uint8_t byte) const {
  if (!s || !s->scan_bytes.test(byte)) return nullptr;
  {
    std::lock_guard lock(mu_);
    if (s->refused_.test(byte)) return nullptr;
    if (s->next_)
      if (auto known = (*s->next_)[byte].lock()) return known;
  }
  auto out = std::make_shared<EarleySet>();
  t_items.reset();
  for (const EarleyItem& it : s->items) {
    const CfgSymbol sym = syms_[alt_begin_[it.alt] + it.dot];  // (no item is completed)
    if (sym.terminal() && terminals_[size_t(sym.terminal_index())].test(byte)) {
      EarleyItem next{it.alt, it.dot + 1, it.origin == s.get() ? s.get() : it.origin};
      if (t_items.insert(next)) out->items.push_back(next);
    }
  }
  if (!closure(*out)) {
    std::lock_guard lock(mu_);
    s->refused_.set(byte);
    return nullptr;
  }
  std::shared_ptr<const EarleySet> made = intern(std::move(out));
  std::lock_guard lock(mu_);
  if (!s->next_) s->next_ = std::make_unique<std::array<std::weak_ptr<const EarleySet>, 256>>();
  (*s->next_)[byte] = made;
  return made;
}

std::shared_ptr<const EarleySet> Earley::advance(std::shared_ptr<const EarleySet> s, std::string_view bytes) const {
  for (char c : bytes) {
    s = step(s, uint8_t(c));
    if (!s) return nullptr;
  }
  return s;
}

bool Earley::accepts(std::string_view text) const {
  auto s = advance(start_, text);
  return s && s->accepting;
}

}  // namespace dsi::grammar
