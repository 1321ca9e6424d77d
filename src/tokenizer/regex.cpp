#include "tokenizer/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <unicode/uchar.h>

#include <array>
#include <map>
#include <vector>

#include "core/error.h"

namespace dsi {
namespace {

// Oniguruma's Unicode classes (doc/RE): \s is U+0009-000D, U+0085 and the Z categories
// (PCRE2 would also take U+180E); \w is letters, marks, numbers and connector punctuation
// (PCRE2: letters, numbers and '_'); \h is a hexadecimal digit (PCRE2: horizontal space).
constexpr std::string_view onig_space = "\\t-\\r\\x{85}\\p{Z}";
constexpr std::string_view onig_hex = "0-9a-fA-F";

// PCRE2 10.42 knows Unicode 14; the reference's Oniguruma knows later versions. Characters
// that ICU assigns in a later version (new emoji, CJK Extension H, ...) are added to each
// general-category class by explicit ranges, so that they are letters or symbols for us too.
constexpr int pcre2_unicode_major = 14;

// Class items for the code points of general category `name` (one or two letters) that PCRE2
// does not know; empty for other names.
const std::string& newer_code_points(std::string_view name) {
  static const std::map<std::string, std::string, std::less<>> table = [] {
    std::map<std::string, std::string, std::less<>> t;
    std::map<std::string, std::vector<std::pair<UChar32, UChar32>>> ranges;
    static const char* const gc_names[] = {"Cn", "Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Me", "Mc", "Nd",
                                           "Nl", "No", "Zs", "Zl", "Zp", "Cc", "Cf", "Co", "Cs", "Pd",
                                           "Ps", "Pe", "Pc", "Po", "Sm", "Sc", "Sk", "So", "Pi", "Pf"};
    for (UChar32 c = 0; c <= 0x10FFFF; ++c) {
      UVersionInfo age;
      u_charAge(c, age);
      if (age[0] <= pcre2_unicode_major) continue;
      int8_t type = u_charType(c);
      if (type <= 0 || type >= int8_t(std::size(gc_names))) continue;
      std::string gc = gc_names[type];
      for (const std::string& key : {gc, gc.substr(0, 1)}) {
        auto& r = ranges[key];
        if (!r.empty() && r.back().second + 1 == c) r.back().second = c;
        else r.emplace_back(c, c);
      }
    }
    for (const auto& [key, list] : ranges) {
      std::string items;
      for (auto [lo, hi] : list)
        items += lo == hi ? fmt::format("\\x{{{:x}}}", lo) : fmt::format("\\x{{{:x}}}-\\x{{{:x}}}", lo, hi);
      t[key] = items;
    }
    return t;
  }();
  static const std::string none;
  auto it = table.find(name);
  return it == table.end() ? none : it->second;
}

std::string category_items(std::string_view name) {
  return fmt::format("\\p{{{}}}{}", name, newer_code_points(name));
}

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  int n = pcre2_get_error_message(code, buffer, sizeof buffer);
  return n < 0 ? "unknown error " + std::to_string(code) : std::string(reinterpret_cast<char*>(buffer));
}

constexpr size_t jit_stack_max = size_t(64) << 20;

}  // namespace

namespace {

// Rewrites one Oniguruma pattern for PCRE2 (see compat_pattern in the header).
class PatternTranslator {
 public:
  explicit PatternTranslator(std::string_view pattern) : p_(pattern) { out_.reserve(p_.size() + 32); }

  std::string run() {
    while (i_ < p_.size()) {
      char c = p_[i_];
      if (c == '\\' && i_ + 1 < p_.size()) {
        char d = p_[i_ + 1];
        i_ += 2;
        escape(d);
      } else if (c == '[' && !in_class_) {
        in_class_ = true;
        out_ += c;
        ++i_;
        if (i_ < p_.size() && p_[i_] == '^') out_ += p_[i_++];
        if (i_ < p_.size() && p_[i_] == ']') out_ += p_[i_++];  // a leading ']' is literal
      } else if (c == '[' && in_class_ && i_ + 1 < p_.size() && p_[i_ + 1] == ':' &&
                 p_.find(":]", i_ + 2) != std::string_view::npos) {
        size_t e = p_.find(":]", i_ + 2);  // [:alpha:] passes through
        out_ += p_.substr(i_, e + 2 - i_);
        i_ = e + 2;
      } else {
        if (c == ']' && in_class_) in_class_ = false;
        out_ += c;
        ++i_;
      }
    }
    return std::move(out_);
  }

 private:
  // Class items, wrapped in [...] or [^...] outside a class.
  void put_class(std::string_view items, bool negate) {
    if (in_class_) {
      out_ += items;
      return;
    }
    out_ += negate ? "[^" : "[";
    out_ += items;
    out_ += ']';
  }

  void escape(char d) {
    auto word = [] { return category_items("L") + category_items("M") + category_items("N") + category_items("Pc"); };
    if (d == 's') {
      put_class(onig_space, false);
    } else if (d == 'w') {
      put_class(word(), false);
    } else if (d == 'h') {
      put_class(onig_hex, false);
    } else if ((d == 'S' || d == 'H' || d == 'W') && !in_class_) {
      put_class(d == 'S' ? std::string(onig_space) : d == 'H' ? std::string(onig_hex) : word(), true);
    } else if ((d == 'p' || d == 'P') && i_ < p_.size()) {
      property(d == 'P');
    } else if (d == 'Q') {
      // Literal text up to \E passes through untouched.
      size_t e = p_.find("\\E", i_);
      size_t stop = e == std::string_view::npos ? p_.size() : e + 2;
      out_ += "\\Q";
      out_ += p_.substr(i_, stop - i_);
      i_ = stop;
    } else {
      out_ += '\\';
      out_ += d;
    }
  }

  // \pL, \p{L}, \p{^L}, \PL, \P{L}: general categories get the newer code points.
  void property(bool negate) {
    std::string_view name;
    size_t next = i_;
    if (p_[i_] == '{') {
      size_t close = p_.find('}', i_);
      if (close != std::string_view::npos) {
        name = p_.substr(i_ + 1, close - i_ - 1);
        next = close + 1;
      }
    } else {
      name = p_.substr(i_, 1);
      next = i_ + 1;
    }
    if (!name.empty() && name[0] == '^') {
      negate = !negate;
      name.remove_prefix(1);
    }
    bool is_category = !name.empty() && name.size() <= 2 && !newer_code_points(name).empty();
    if (is_category && !(negate && in_class_)) {  // a negated class inside a class stays as it is
      put_class(category_items(name), negate);
      i_ = next;
    } else {
      out_ += '\\';
      out_ += p_[i_ - 1];  // the 'p' or 'P' as written; the main loop copies the rest
    }
  }

  std::string_view p_;
  std::string out_;
  size_t i_ = 0;
  bool in_class_ = false;
};

}  // namespace

std::string compat_pattern(std::string_view pattern) { return PatternTranslator(pattern).run(); }

RegexScratch::RegexScratch() {
  match_data_ = pcre2_match_data_create(1, nullptr);
  match_context_ = pcre2_match_context_create(nullptr);
  if (!match_data_ || !match_context_) throw std::bad_alloc();
}

RegexScratch::~RegexScratch() {
  pcre2_match_data_free(match_data_);
  pcre2_match_context_free(match_context_);
  pcre2_jit_stack_free(jit_stack_);
}

Regex::Regex(std::string_view pattern) : pattern_(pattern) {
  std::string translated = compat_pattern(pattern);
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  uint32_t options = PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE | PCRE2_NEVER_BACKSLASH_C;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                                   options, &error_code, &error_offset, nullptr);
  if (!code)
    fail("regex '{}': {} (at offset {} of '{}')", pattern_, pcre2_message(error_code), error_offset,
         translated);
  code_ = std::shared_ptr<pcre2_code>(code, pcre2_code_free);
  jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
}

bool Regex::find(std::string_view subject, size_t start, RegexScratch& scratch, size_t& begin,
                 size_t& end) const {
  auto* s = reinterpret_cast<PCRE2_SPTR>(subject.data());
  int rc = 0;
  if (jit_) {
    rc = pcre2_jit_match(code_.get(), s, subject.size(), start, 0, scratch.match_data_,
                         scratch.match_context_);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !scratch.jit_stack_) {
      // Deep backtracking on a long input: give this thread a larger JIT stack and retry.
      scratch.jit_stack_ = pcre2_jit_stack_create(32 * 1024, jit_stack_max, nullptr);
      if (!scratch.jit_stack_) throw std::bad_alloc();
      pcre2_jit_stack_assign(scratch.match_context_, nullptr, scratch.jit_stack_);
      rc = pcre2_jit_match(code_.get(), s, subject.size(), start, 0, scratch.match_data_,
                           scratch.match_context_);
    }
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT)  // the interpreter keeps its frames on the heap
      rc = pcre2_match(code_.get(), s, subject.size(), start, PCRE2_NO_JIT | PCRE2_NO_UTF_CHECK,
                       scratch.match_data_, scratch.match_context_);
  } else {
    rc = pcre2_match(code_.get(), s, subject.size(), start, PCRE2_NO_UTF_CHECK, scratch.match_data_,
                     scratch.match_context_);
  }
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  if (rc < 0) fail("regex '{}' failed on a {}-byte input: {}", pattern_, subject.size(), pcre2_message(rc));
  PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(scratch.match_data_);
  begin = ovector[0];
  end = ovector[1];
  return true;
}

}  // namespace dsi
