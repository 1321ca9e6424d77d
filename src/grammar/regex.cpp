#include "grammar/regex.h"

#include <bitset>
#include <memory>
#include <string>

#include "core/error.h"

namespace dsi::grammar {

namespace {

// The parse tree; the NFA is emitted from it (a bounded repeat emits its operand again).
struct Node {
  enum Kind { k_empty, k_literal, k_set, k_concat, k_alt, k_repeat } kind = k_empty;
  std::string bytes;                   // k_literal: one character's UTF-8 bytes
  std::bitset<128> ascii;              // k_set
  bool non_ascii = false;              // k_set: every character above U+007F too
  std::vector<std::string> multibyte;  // k_set: these non-ASCII characters
  std::vector<std::unique_ptr<Node>> kids;
  int min = 0, max = -1;  // k_repeat; max -1: unbounded
};
using NodePtr = std::unique_ptr<Node>;

constexpr int kMaxRepeat = 1000;

class Parser {
 public:
  explicit Parser(std::string_view p) : p_(p) {}

  NodePtr parse() {
    if (peek('^')) ++i_;
    NodePtr n = alternation();
    if (i_ < p_.size()) error("unexpected ')'");
    return n;
  }

 private:
  std::string_view p_;
  size_t i_ = 0;

  [[noreturn]] void error(const std::string& what) const {
    fail("regex: {} at offset {} of /{}/", what, i_, std::string(p_.substr(0, 200)));
  }
  bool peek(char c) const { return i_ < p_.size() && p_[i_] == c; }

  NodePtr alternation() {
    auto alt = std::make_unique<Node>();
    alt->kind = Node::k_alt;
    alt->kids.push_back(concatenation());
    while (peek('|')) {
      ++i_;
      alt->kids.push_back(concatenation());
    }
    return alt->kids.size() == 1 ? std::move(alt->kids[0]) : std::move(alt);
  }

  NodePtr concatenation() {
    auto cat = std::make_unique<Node>();
    cat->kind = Node::k_concat;
    while (i_ < p_.size() && !peek('|') && !peek(')')) {
      if (peek('$') && i_ + 1 == p_.size()) {
        ++i_;
        break;
      }
      cat->kids.push_back(quantified(atom()));
    }
    return cat;
  }

  int number() {
    size_t start = i_;
    long v = 0;
    while (i_ < p_.size() && std::isdigit(static_cast<unsigned char>(p_[i_])) && v <= kMaxRepeat)
      v = v * 10 + (p_[i_++] - '0');
    if (i_ == start) error("expected a number in {m,n}");
    if (v > kMaxRepeat) error(fmt::format("a repeat count above {}", kMaxRepeat));
    return int(v);
  }

  NodePtr quantified(NodePtr atom) {
    while (i_ < p_.size()) {
      int lo, hi;
      char c = p_[i_];
      if (c == '*') lo = 0, hi = -1, ++i_;
      else if (c == '+') lo = 1, hi = -1, ++i_;
      else if (c == '?') lo = 0, hi = 1, ++i_;
      else if (c == '{') {
        ++i_;
        lo = number();
        hi = lo;
        if (peek(',')) {
          ++i_;
          hi = peek('}') ? -1 : number();
        }
        if (!peek('}')) error("expected '}'");
        ++i_;
        if (hi != -1 && hi < lo) error("{m,n} with n < m");
      } else {
        break;
      }
      if (peek('?') || peek('+')) ++i_;  // lazy / possessive: the same language
      auto r = std::make_unique<Node>();
      r->kind = Node::k_repeat;
      r->min = lo;
      r->max = hi;
      r->kids.push_back(std::move(atom));
      atom = std::move(r);
    }
    return atom;
  }

  // One UTF-8 character of the pattern, as bytes.
  std::string utf8_char() {
    unsigned char c = static_cast<unsigned char>(p_[i_]);
    size_t n = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
    if (n == 0 || i_ + n > p_.size()) error("invalid UTF-8");
    std::string s(p_.substr(i_, n));
    i_ += n;
    return s;
  }

  static std::string encode_utf8(uint32_t cp) {
    std::string s;
    if (cp < 0x80) s += char(cp);
    else if (cp < 0x800) s += char(0xC0 | (cp >> 6)), s += char(0x80 | (cp & 0x3F));
    else if (cp < 0x10000)
      s += char(0xE0 | (cp >> 12)), s += char(0x80 | ((cp >> 6) & 0x3F)), s += char(0x80 | (cp & 0x3F));
    else
      s += char(0xF0 | (cp >> 18)), s += char(0x80 | ((cp >> 12) & 0x3F)), s += char(0x80 | ((cp >> 6) & 0x3F)),
          s += char(0x80 | (cp & 0x3F));
    return s;
  }

  static NodePtr set_of(std::bitset<128> ascii, bool non_ascii) {
    auto n = std::make_unique<Node>();
    n->kind = Node::k_set;
    n->ascii = ascii;
    n->non_ascii = non_ascii;
    return n;
  }
  static std::bitset<128> range(int lo, int hi) {
    std::bitset<128> b;
    for (int c = lo; c <= hi; ++c) b.set(size_t(c));
    return b;
  }
  static std::bitset<128> digits() { return range('0', '9'); }
  static std::bitset<128> word() { return range('0', '9') | range('a', 'z') | range('A', 'Z') | range('_', '_'); }
  static std::bitset<128> space() {
    std::bitset<128> b;
    for (char c : std::string_view(" \t\n\r\f\v")) b.set(size_t(c));
    return b;
  }

  // An escape after the backslash: a class (\d ...) in `set`/`negated`, else one character.
  bool class_escape(char e, std::bitset<128>& set, bool& negated) {
    negated = false;
    switch (e) {
      case 'd': set = digits(); return true;
      case 'w': set = word(); return true;
      case 's': set = space(); return true;
      case 'D': set = digits(); negated = true; return true;
      case 'W': set = word(); negated = true; return true;
      case 'S': set = space(); negated = true; return true;
      default: return false;
    }
  }
  std::string char_escape() {
    if (i_ >= p_.size()) error("a trailing backslash");
    char e = p_[i_++];
    switch (e) {
      case 'n': return "\n";
      case 'r': return "\r";
      case 't': return "\t";
      case 'f': return "\f";
      case 'v': return "\v";
      case '0': return std::string(1, '\0');
      case 'u': {
        if (i_ + 4 > p_.size()) error("\\u needs four hex digits");
        uint32_t cp = 0;
        for (int k = 0; k < 4; ++k) {
          char h = p_[i_++];
          int v = std::isdigit(static_cast<unsigned char>(h)) ? h - '0'
                  : (h >= 'a' && h <= 'f')                   ? h - 'a' + 10
                  : (h >= 'A' && h <= 'F')                   ? h - 'A' + 10
                                                             : -1;
          if (v < 0) error("\\u needs four hex digits");
          cp = cp * 16 + uint32_t(v);
        }
        return encode_utf8(cp);
      }
      default:
        if (std::isalnum(static_cast<unsigned char>(e))) error(fmt::format("unsupported escape \\{}", e));
        return std::string(1, e);
    }
  }

  NodePtr klass() {
    ++i_;  // '['
    bool negate = peek('^');
    if (negate) ++i_;
    std::bitset<128> ascii;
    std::vector<std::string> multi;
    bool negated_escape = false;
    bool first = true;
    while (i_ < p_.size() && (!peek(']') || first)) {
      first = false;
      std::string lo;
      if (peek('\\')) {
        ++i_;
        std::bitset<128> s;
        bool neg = false;
        if (i_ < p_.size() && class_escape(p_[i_], s, neg)) {
          ++i_;
          if (neg) {
            ascii |= ~s;
            negated_escape = true;
          } else {
            ascii |= s;
          }
          continue;
        }
        lo = char_escape();
      } else {
        lo = utf8_char();
      }
      if (peek('-') && i_ + 1 < p_.size() && p_[i_ + 1] != ']') {
        ++i_;
        std::string hi = peek('\\') ? (++i_, char_escape()) : utf8_char();
        if (lo.size() != 1 || hi.size() != 1) error("class ranges must be ASCII");
        if (hi[0] < lo[0]) error("a class range out of order");
        ascii |= range(lo[0], hi[0]);
      } else if (lo.size() == 1) {
        ascii.set(size_t(static_cast<unsigned char>(lo[0])));
      } else {
        multi.push_back(lo);
      }
    }
    if (!peek(']')) error("an unclosed '['");
    ++i_;
    if (negate) {
      if (!multi.empty()) error("a negated class with non-ASCII characters");
      return set_of(~ascii, !negated_escape);
    }
    NodePtr n = set_of(ascii, negated_escape);
    n->multibyte = std::move(multi);
    return n;
  }

  NodePtr atom() {
    char c = p_[i_];
    if (c == '(') {
      ++i_;
      if (peek('?')) {
        if (i_ + 1 < p_.size() && p_[i_ + 1] == ':') i_ += 2;
        else error("only (?: ) groups are supported");
      }
      NodePtr inner = alternation();
      if (!peek(')')) error("an unclosed '('");
      ++i_;
      return inner;
    }
    if (c == '[') return klass();
    if (c == '.') {
      ++i_;
      std::bitset<128> all;
      all.set();
      all.reset('\n');
      return set_of(all, true);
    }
    if (c == '*' || c == '+' || c == '?' || c == '{') error(fmt::format("nothing to repeat before '{}'", c));
    auto lit = std::make_unique<Node>();
    lit->kind = Node::k_literal;
    if (c == '\\') {
      ++i_;
      std::bitset<128> s;
      bool neg = false;
      if (i_ < p_.size() && class_escape(p_[i_], s, neg)) {
        ++i_;
        return neg ? set_of(~s, true) : set_of(s, false);
      }
      lit->bytes = char_escape();
    } else {
      lit->bytes = utf8_char();
    }
    return lit;
  }
};

class Builder {
 public:
  Nfa nfa;
  int state() {
    nfa.states.emplace_back();
    return int(nfa.states.size()) - 1;
  }
  void edge(int from, uint8_t lo, uint8_t hi, int to) { nfa.states[size_t(from)].edges.push_back({lo, hi, to}); }
  void eps(int from, int to) { nfa.states[size_t(from)].eps.push_back(to); }

  // A path from `from` to `to` reading `bytes` (each byte a [lo, hi] range).
  void path(int from, const std::vector<std::pair<uint8_t, uint8_t>>& bytes, int to) {
    int at = from;
    for (size_t k = 0; k < bytes.size(); ++k) {
      int next = k + 1 == bytes.size() ? to : state();
      edge(at, bytes[k].first, bytes[k].second, next);
      at = next;
    }
  }

  // Every UTF-8 sequence of a character above U+007F.
  void non_ascii(int from, int to) {
    using R = std::vector<std::pair<uint8_t, uint8_t>>;
    const std::pair<uint8_t, uint8_t> cont{0x80, 0xBF};
    for (const R& r : {R{{0xC2, 0xDF}, cont}, R{{0xE0, 0xE0}, {0xA0, 0xBF}, cont}, R{{0xE1, 0xEC}, cont, cont},
                       R{{0xED, 0xED}, {0x80, 0x9F}, cont}, R{{0xEE, 0xEF}, cont, cont},
                       R{{0xF0, 0xF0}, {0x90, 0xBF}, cont, cont}, R{{0xF1, 0xF3}, cont, cont, cont},
                       R{{0xF4, 0xF4}, {0x80, 0x8F}, cont, cont}})
      path(from, r, to);
  }

  void emit(const Node& n, int from, int to) {
    switch (n.kind) {
      case Node::k_empty: eps(from, to); break;
      case Node::k_literal: {
        std::vector<std::pair<uint8_t, uint8_t>> bytes;
        for (char c : n.bytes) bytes.emplace_back(uint8_t(c), uint8_t(c));
        path(from, bytes, to);
        break;
      }
      case Node::k_set: {
        for (int c = 0; c < 128;) {
          if (!n.ascii.test(size_t(c))) {
            ++c;
            continue;
          }
          int hi = c;
          while (hi + 1 < 128 && n.ascii.test(size_t(hi + 1))) ++hi;
          edge(from, uint8_t(c), uint8_t(hi), to);
          c = hi + 1;
        }
        if (n.non_ascii) non_ascii(from, to);
        for (const auto& m : n.multibyte) {
          std::vector<std::pair<uint8_t, uint8_t>> bytes;
          for (char c : m) bytes.emplace_back(uint8_t(c), uint8_t(c));
          path(from, bytes, to);
        }
        break;
      }
      case Node::k_concat: {
        if (n.kids.empty()) {
          eps(from, to);
          break;
        }
        int at = from;
        for (size_t k = 0; k < n.kids.size(); ++k) {
          int next = k + 1 == n.kids.size() ? to : state();
          emit(*n.kids[k], at, next);
          at = next;
        }
        break;
      }
      case Node::k_alt:
        for (const auto& kid : n.kids) {
          int a = state(), b = state();
          eps(from, a);
          emit(*kid, a, b);
          eps(b, to);
        }
        break;
      case Node::k_repeat: {
        const Node& kid = *n.kids[0];
        int at = from;
        for (int k = 0; k < n.min; ++k) {
          int next = state();
          emit(kid, at, next);
          at = next;
        }
        if (n.max < 0) {
          int loop = state();
          eps(at, loop);
          int back = state();
          emit(kid, loop, back);
          eps(back, loop);
          eps(loop, to);
        } else {
          for (int k = n.min; k < n.max; ++k) {
            eps(at, to);
            int next = state();
            emit(kid, at, next);
            at = next;
          }
          eps(at, to);
        }
        break;
      }
    }
    if (nfa.states.size() > kMaxStates)
      fail("regex: the automaton passed {} states (nested bounded repeats?); simplify the pattern", kMaxStates);
  }
  static constexpr size_t kMaxStates = 2'000'000;
};

}  // namespace

Nfa compile_regex(std::string_view pattern) {
  NodePtr tree = Parser(pattern).parse();
  Builder b;
  b.nfa.start = b.state();
  b.nfa.accept = b.state();
  b.emit(*tree, b.nfa.start, b.nfa.accept);
  return std::move(b.nfa);
}

std::string escape_regex(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (std::string_view("\\^$.|?*+()[]{}/-").find(c) != std::string_view::npos) out += '\\';
    if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else out += c;
  }
  return out;
}

}  // namespace dsi::grammar
