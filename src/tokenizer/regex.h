#pragma once
// The regular expressions of tokenizer.json (Split pre-tokenizers, Replace normalizers), run
// with PCRE2 (JIT, UTF, Unicode properties). The reference library compiles them with
// Oniguruma's Ruby syntax; `compat_pattern` bridges the differences that matter for tokenizer
// patterns: what \s, \w and \h mean, ^ and $ matching at line ends, and general categories
// (\p{L}, ...) extended with the characters of Unicode versions newer than PCRE2's tables that
// ICU knows (PCRE2 10.42 has Unicode 14; ICU 72 has 15.0; the reference has 16.0).
//
// A Regex is immutable after construction and may be shared by any number of threads; each
// thread matches with its own RegexScratch.
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "tokenizer/utf8.h"

struct pcre2_real_code_8;
struct pcre2_real_match_data_8;
struct pcre2_real_match_context_8;
struct pcre2_real_jit_stack_8;

namespace dsi {

// Per-thread matching state (PCRE2 match data, and a JIT stack grown on demand). Not
// thread-safe; reusable across all regexes.
class RegexScratch {
 public:
  RegexScratch();
  ~RegexScratch();
  RegexScratch(const RegexScratch&) = delete;
  RegexScratch& operator=(const RegexScratch&) = delete;

 private:
  friend class Regex;
  pcre2_real_match_data_8* match_data_ = nullptr;
  pcre2_real_match_context_8* match_context_ = nullptr;
  pcre2_real_jit_stack_8* jit_stack_ = nullptr;
};

class Regex {
 public:
  // Compiles an Oniguruma-syntax pattern; a syntax error is an Error naming the pattern.
  explicit Regex(std::string_view pattern);

  const std::string& pattern() const { return pattern_; }

  // Calls fn(begin, end) for each match in `subject` (valid UTF-8), left to right and not
  // overlapping, with the reference's rule for empty matches: an empty match that ends where
  // the previous match ended is skipped by advancing one character.
  template <class Fn>
  void for_each_match(std::string_view subject, RegexScratch& scratch, Fn&& fn) const {
    constexpr size_t no_match = size_t(-1);
    size_t start = 0;
    size_t last_match_end = no_match;
    while (start <= subject.size()) {
      size_t begin = 0, end = 0;
      if (!find(subject, start, scratch, begin, end)) break;
      if (begin == end && end == last_match_end) {
        if (start >= subject.size()) break;
        start += utf8::lead_length(uint8_t(subject[start]));
        continue;
      }
      fn(begin, end);
      start = end;
      last_match_end = end;
    }
  }

  // The first match at or after `start`; false if none.
  bool find(std::string_view subject, size_t start, RegexScratch& scratch, size_t& begin,
            size_t& end) const;

 private:
  std::string pattern_;
  std::shared_ptr<pcre2_real_code_8> code_;
  bool jit_ = false;
};

// The PCRE2 spelling of an Oniguruma (Ruby syntax) pattern: \s, \w and \h (and their
// negations outside character classes) become explicit classes with Oniguruma's Unicode
// meaning; everything else is passed through.
std::string compat_pattern(std::string_view onig_pattern);

}  // namespace dsi
