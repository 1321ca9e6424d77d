#include "grammar/ebnf.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <utility>

#include "core/error.h"

namespace dsi::grammar {

namespace {

using Seq = std::vector<CfgSymbol>;
using CodeRange = std::pair<uint32_t, uint32_t>;  // code points [first, second]

constexpr uint32_t kMaxCodePoint = 0x10FFFF;

void encode_utf8(uint32_t cp, uint8_t* out, int& n) {
  if (cp < 0x80) {
    out[0] = uint8_t(cp), n = 1;
  } else if (cp < 0x800) {
    out[0] = uint8_t(0xC0 | (cp >> 6)), out[1] = uint8_t(0x80 | (cp & 0x3F)), n = 2;
  } else if (cp < 0x10000) {
    out[0] = uint8_t(0xE0 | (cp >> 12)), out[1] = uint8_t(0x80 | ((cp >> 6) & 0x3F));
    out[2] = uint8_t(0x80 | (cp & 0x3F)), n = 3;
  } else {
    out[0] = uint8_t(0xF0 | (cp >> 18)), out[1] = uint8_t(0x80 | ((cp >> 12) & 0x3F));
    out[2] = uint8_t(0x80 | ((cp >> 6) & 0x3F)), out[3] = uint8_t(0x80 | (cp & 0x3F)), n = 4;
  }
}

int utf8_length(uint32_t cp) { return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4; }

// The UTF-8 encodings of code points [lo, hi] (one encoded length, no surrogates) as
// sequences of byte ranges: split until every byte position varies independently, the
// usual construction for byte-level automata over UTF-8.
void utf8_sequences(uint32_t lo, uint32_t hi, std::vector<std::vector<std::pair<uint8_t, uint8_t>>>& out) {
  const int n = utf8_length(lo);
  for (int i = 1; i < n; ++i) {
    const uint32_t m = (1u << (6 * i)) - 1;
    if ((lo & ~m) != (hi & ~m)) {
      if ((lo & m) != 0) {
        utf8_sequences(lo, lo | m, out);
        utf8_sequences((lo | m) + 1, hi, out);
        return;
      }
      if ((hi & m) != m) {
        utf8_sequences(lo, (hi & ~m) - 1, out);
        utf8_sequences(hi & ~m, hi, out);
        return;
      }
    }
  }
  uint8_t a[4], b[4];
  int na = 0, nb = 0;
  encode_utf8(lo, a, na);
  encode_utf8(hi, b, nb);
  std::vector<std::pair<uint8_t, uint8_t>> seq;
  for (int k = 0; k < na; ++k) seq.emplace_back(a[k], b[k]);
  out.push_back(std::move(seq));
}

class Parser {
 public:
  explicit Parser(std::string_view text) : p_(text) {}

  Cfg run() {
    if (p_.size() > kMaxGrammarBytes) fail("grammar: longer than {} bytes", kMaxGrammarBytes);
    skip_space();
    if (i_ == p_.size()) fail("grammar: empty (it needs at least a rule 'root ::= ...')");
    while (i_ < p_.size()) {
      const size_t at = i_;
      std::string name = identifier();
      if (name.empty()) error("expected a rule name");
      skip_space();
      if (p_.substr(i_, 3) != "::=") error("expected '::=' after the rule name '" + name + "'");
      i_ += 3;
      const int32_t r = rule_id(name, at);
      if (defined_[size_t(r)]) error_at(at, "rule '" + name + "' is defined twice");
      defined_[size_t(r)] = 1;
      cfg_.rules[size_t(r)].alts = alternatives(0);
      skip_space();
    }
    for (size_t r = 0; r < cfg_.rules.size(); ++r)
      if (!defined_[r]) error_at(first_use_[r], "rule '" + cfg_.rules[r].name + "' is used but not defined");
    auto root = names_.find("root");
    if (root == names_.end()) fail("grammar: no rule 'root' (the start symbol: root ::= ...)");
    cfg_.start = root->second;
    return std::move(cfg_);
  }

 private:
  [[noreturn]] void error_at(size_t at, const std::string& what) const {
    size_t line = 1, col = 1;
    for (size_t k = 0; k < at && k < p_.size(); ++k) {
      if (p_[k] == '\n') ++line, col = 1;
      else if ((uint8_t(p_[k]) & 0xC0) != 0x80) ++col;  // columns count characters
    }
    fail("grammar: line {} column {}: {}", line, col, what);
  }
  [[noreturn]] void error(const std::string& what) const { error_at(i_, what); }

  // Spaces, newlines and comments.
  void skip_space() {
    while (i_ < p_.size()) {
      char c = p_[i_];
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        ++i_;
      } else if (c == '#') {
        while (i_ < p_.size() && p_[i_] != '\n') ++i_;
      } else {
        break;
      }
    }
  }

  static bool name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '.';
  }
  std::string identifier() {
    size_t b = i_;
    if (i_ < p_.size() && (std::isalpha(uint8_t(p_[i_])) || p_[i_] == '_'))
      while (i_ < p_.size() && name_char(p_[i_])) ++i_;
    return std::string(p_.substr(b, i_ - b));
  }

  // Whether the next thing is `name ::=`: the start of the next rule, which ends this one.
  bool at_rule_start() {
    size_t save = i_;
    std::string name = identifier();
    skip_space();
    bool yes = !name.empty() && p_.substr(i_, 3) == "::=";
    i_ = save;
    return yes;
  }

  int32_t rule_id(const std::string& name, size_t at) {
    auto [it, fresh] = names_.try_emplace(name, int32_t(cfg_.rules.size()));
    if (fresh) {
      cfg_.rules.push_back({name, {}});
      defined_.push_back(0);
      first_use_.push_back(at);
    }
    return it->second;
  }

  int32_t fresh_rule(std::vector<Seq> alts) {
    cfg_.rules.push_back({fmt::format("#{}", cfg_.rules.size()), std::move(alts)});  // (no grammar name has '#')
    defined_.push_back(1);
    first_use_.push_back(i_);
    return int32_t(cfg_.rules.size() - 1);
  }

  void count(size_t n) {
    n_symbols_ += n;
    if (n_symbols_ > kMaxCfgSymbols)
      error(fmt::format("the grammar expands to more than {} symbols (repeats and classes included)", kMaxCfgSymbols));
  }

  int32_t terminal(const std::bitset<256>& bytes) {
    auto key = bytes.to_string();
    auto [it, fresh] = terminal_ids_.try_emplace(key, int32_t(cfg_.terminals.size()));
    if (fresh) cfg_.terminals.push_back(bytes);
    return it->second;
  }
  CfgSymbol byte_symbol(uint8_t b) {
    std::bitset<256> s;
    s.set(b);
    return CfgSymbol::term(terminal(s));
  }

  // alternatives := sequence ('|' sequence)*; ends at ')' (depth > 0), the next rule, or the end.
  std::vector<Seq> alternatives(int depth) {
    std::vector<Seq> alts;
    alts.push_back(sequence(depth));
    while (i_ < p_.size() && p_[i_] == '|') {
      ++i_;
      alts.push_back(sequence(depth));
    }
    return alts;
  }

  Seq sequence(int depth) {
    Seq seq;
    for (;;) {
      skip_space();
      if (i_ == p_.size() || p_[i_] == '|') break;
      if (p_[i_] == ')') {
        if (depth == 0) error("')' without its '('");
        break;
      }
      if (depth == 0 && at_rule_start()) break;
      Seq item = quantified(depth);
      seq.insert(seq.end(), item.begin(), item.end());
    }
    return seq;
  }

  // One element and its quantifier; repeats become rules (left-recursive, which the Earley
  // matcher runs in constant items per byte, where right recursion would grow with the count).
  Seq quantified(int depth) {
    Seq x = element(depth);
    skip_inline_space();
    if (i_ == p_.size()) return x;
    char q = p_[i_];
    int lo = 1, hi = 1;
    if (q == '*') lo = 0, hi = -1, ++i_;
    else if (q == '+') lo = 1, hi = -1, ++i_;
    else if (q == '?') lo = 0, hi = 1, ++i_;
    else if (q == '{') braces(lo, hi);
    else return x;
    return repeat(x, lo, hi);
  }

  void skip_inline_space() {
    while (i_ < p_.size() && (p_[i_] == ' ' || p_[i_] == '\t')) ++i_;
  }

  void braces(int& lo, int& hi) {
    const size_t at = i_++;
    lo = number();
    hi = lo;
    if (i_ < p_.size() && p_[i_] == ',') {
      ++i_;
      skip_inline_space();
      hi = (i_ < p_.size() && p_[i_] == '}') ? -1 : number();
    }
    skip_inline_space();
    if (i_ >= p_.size() || p_[i_] != '}') error("expected '}' to close the repeat");
    ++i_;
    if (hi != -1 && hi < lo) error_at(at, fmt::format("repeat {{{},{}}} has its bounds out of order", lo, hi));
  }
  int number() {
    skip_inline_space();
    if (i_ == p_.size() || !std::isdigit(uint8_t(p_[i_]))) error("expected a number in the repeat");
    const size_t at = i_;
    long v = 0;
    while (i_ < p_.size() && std::isdigit(uint8_t(p_[i_]))) {
      v = v * 10 + (p_[i_++] - '0');
      if (v > kMaxGrammarRepeat) error_at(at, fmt::format("a repeat count above {}", kMaxGrammarRepeat));
    }
    skip_inline_space();
    return int(v);
  }

  Seq repeat(const Seq& x, int lo, int hi) {
    if (lo == 1 && hi == 1) return x;
    const CfgSymbol one = single(x);
    Seq out;
    count(size_t(lo) + 2);
    for (int k = 0; k < lo; ++k) out.push_back(one);
    if (hi == -1) {  // star: N ::= "" | N x
      const int32_t n = fresh_rule({});
      cfg_.rules[size_t(n)].alts = {{}, {CfgSymbol::rule(n), one}};
      out.push_back(CfgSymbol::rule(n));
    } else if (hi > lo) {  // up to hi-lo more: T_k ::= "" | x T_{k-1}
      count(size_t(hi - lo) * 2);
      int32_t tail = fresh_rule({{}, {one}});
      for (int k = 1; k < hi - lo; ++k) tail = fresh_rule({{}, {one, CfgSymbol::rule(tail)}});
      out.push_back(CfgSymbol::rule(tail));
    }
    return out;
  }

  // A sequence as one symbol (a rule of one alternative unless it is one symbol already).
  CfgSymbol single(const Seq& x) {
    if (x.size() == 1) return x[0];
    return CfgSymbol::rule(fresh_rule({x}));
  }

  Seq element(int depth) {
    const size_t at = i_;
    char c = p_[i_];
    if (c == '"' || c == '\'') return literal();
    if (c == '[') return {char_class()};
    if (c == '.') {
      ++i_;
      return {code_ranges({{0, kMaxCodePoint}})};
    }
    if (c == '(') {
      ++i_;
      std::vector<Seq> alts = alternatives(depth + 1);
      if (i_ >= p_.size() || p_[i_] != ')') error_at(at, "'(' without its ')'");
      ++i_;
      if (alts.size() == 1) return alts[0];
      return {CfgSymbol::rule(fresh_rule(std::move(alts)))};
    }
    std::string name = identifier();
    if (name.empty()) error(fmt::format("unexpected '{}'", std::string(1, c)));
    count(1);
    return {CfgSymbol::rule(rule_id(name, at))};
  }

  uint32_t hex(int n_digits) {
    uint32_t v = 0;
    for (int k = 0; k < n_digits; ++k) {
      if (i_ >= p_.size() || !std::isxdigit(uint8_t(p_[i_]))) error(fmt::format("expected {} hex digits", n_digits));
      char h = p_[i_++];
      v = v * 16 + uint32_t(std::isdigit(uint8_t(h)) ? h - '0' : (std::tolower(uint8_t(h)) - 'a' + 10));
    }
    return v;
  }

  // One character of a literal or class (an escape or a UTF-8 sequence), as a code point;
  // `raw` says it was a byte escape (\xHH), which stands for the byte itself.
  uint32_t character(bool& raw) {
    raw = false;
    const size_t at = i_;
    uint8_t c = uint8_t(p_[i_]);
    if (c == '\\') {
      ++i_;
      if (i_ >= p_.size()) error("an escape at the end of the grammar");
      char e = p_[i_++];
      switch (e) {
        case 'n': return '\n';
        case 'r': return '\r';
        case 't': return '\t';
        case 'f': return '\f';
        case 'v': return '\v';
        case '0': return 0;
        case 'x': raw = true; return hex(2);
        case 'u': return checked(hex(4), at);
        case 'U': return checked(hex(8), at);
        case '\\': case '"': case '\'': case '[': case ']': case '-': case '^': case '/':
          return uint32_t(uint8_t(e));
        default: error_at(at, fmt::format("unknown escape '\\{}'", std::string(1, e)));
      }
    }
    int n = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
    if (n == 0 || i_ + size_t(n) > p_.size()) error("invalid UTF-8");
    uint32_t cp = n == 1 ? c : c & (0xFF >> (n + 1));
    for (int k = 1; k < n; ++k) {
      uint8_t b = uint8_t(p_[i_ + size_t(k)]);
      if ((b & 0xC0) != 0x80) error("invalid UTF-8");
      cp = (cp << 6) | (b & 0x3F);
    }
    i_ += size_t(n);
    return cp;
  }
  uint32_t checked(uint32_t cp, size_t at) const {
    if (cp > kMaxCodePoint || (cp >= 0xD800 && cp <= 0xDFFF)) error_at(at, "an escape that is not a Unicode character");
    return cp;
  }

  Seq literal() {
    const size_t at = i_;
    const char quote = p_[i_++];
    Seq out;
    for (;;) {
      if (i_ >= p_.size() || p_[i_] == '\n') error_at(at, "a literal without its closing quote");
      if (p_[i_] == quote) break;
      bool raw = false;
      uint32_t cp = character(raw);
      uint8_t b[4];
      int n = 1;
      if (raw) b[0] = uint8_t(cp);
      else encode_utf8(cp, b, n);
      count(size_t(n));
      for (int k = 0; k < n; ++k) out.push_back(byte_symbol(b[k]));
    }
    ++i_;
    return out;
  }

  CfgSymbol char_class() {
    const size_t at = i_++;
    bool negated = i_ < p_.size() && p_[i_] == '^';
    if (negated) ++i_;
    std::vector<CodeRange> ranges;
    std::bitset<256> raw_bytes;  // \xHH above 0x7F: bytes, not characters
    bool first = true;
    for (;;) {
      if (i_ >= p_.size()) error_at(at, "'[' without its ']'");
      if (p_[i_] == ']' && !first) break;
      first = false;
      bool raw = false;
      uint32_t lo = character(raw);
      uint32_t hi = lo;
      if (i_ + 1 < p_.size() && p_[i_] == '-' && p_[i_ + 1] != ']') {
        ++i_;
        bool raw_hi = false;
        hi = character(raw_hi);
        raw = raw || raw_hi;
        if (hi < lo) error_at(at, "a class range out of order");
      }
      if (raw && hi >= 0x80) {
        if (negated) error_at(at, "a negated class with byte escapes above \\x7F");
        for (uint32_t b = lo; b <= hi; ++b) raw_bytes.set(b);
      } else {
        ranges.emplace_back(lo, hi);
      }
    }
    ++i_;
    std::sort(ranges.begin(), ranges.end());
    if (negated) {
      std::vector<CodeRange> inv;
      uint32_t next = 0;
      for (auto [lo, hi] : ranges) {
        if (lo > next) inv.emplace_back(next, lo - 1);
        next = std::max(next, hi + 1);
      }
      if (next <= kMaxCodePoint) inv.emplace_back(next, kMaxCodePoint);
      ranges = std::move(inv);
    }
    if (ranges.empty() && raw_bytes.none()) error_at(at, "a class that matches nothing");
    return code_ranges(ranges, raw_bytes);
  }

  // Characters in `ranges` (plus single bytes `extra`) as one symbol: a terminal when all are
  // single bytes, else a rule whose alternatives are the UTF-8 byte sequences.
  CfgSymbol code_ranges(const std::vector<CodeRange>& ranges, std::bitset<256> extra = {}) {
    std::bitset<256> ascii = extra;
    std::vector<std::vector<std::pair<uint8_t, uint8_t>>> seqs;
    for (auto [lo, hi] : ranges) {
      for (uint32_t b = lo; b <= std::min(hi, 0x7Fu); ++b) ascii.set(b);
      // The rest split by encoded length, without the surrogates.
      const uint32_t bounds[][2] = {{0x80, 0x7FF}, {0x800, 0xD7FF}, {0xE000, 0xFFFF}, {0x10000, kMaxCodePoint}};
      for (auto [blo, bhi] : bounds) {
        uint32_t a = std::max(lo, blo), b = std::min(hi, bhi);
        if (a <= b) utf8_sequences(a, b, seqs);
      }
    }
    if (seqs.empty()) return CfgSymbol::term(terminal(ascii));
    std::vector<Seq> alts;
    if (ascii.any()) alts.push_back({CfgSymbol::term(terminal(ascii))});
    for (const auto& s : seqs) {
      Seq seq;
      for (auto [lo, hi] : s) {
        std::bitset<256> set;
        for (uint32_t b = lo; b <= hi; ++b) set.set(b);
        seq.push_back(CfgSymbol::term(terminal(set)));
      }
      count(seq.size());
      alts.push_back(std::move(seq));
    }
    return CfgSymbol::rule(fresh_rule(std::move(alts)));
  }

  std::string_view p_;
  size_t i_ = 0;
  Cfg cfg_;
  std::map<std::string, int32_t> names_;
  std::vector<char> defined_;
  std::vector<size_t> first_use_;
  std::map<std::string, int32_t> terminal_ids_;
  size_t n_symbols_ = 0;
};

}  // namespace

Cfg parse_ebnf(std::string_view text) { return Parser(text).run(); }

}  // namespace dsi::grammar
