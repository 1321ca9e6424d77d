#include "tokenizer/normalizer.h"

#include <unicode/bytestream.h>
#include <unicode/locid.h>
#include <unicode/normalizer2.h>
#include <unicode/uniset.h>
#include <unicode/unistr.h>

#include "tokenizer/unicode_props.h"
#include "tokenizer/utf8.h"

namespace dsi {
namespace {

// The reference normalizes with old Unicode data (version 9 as far as it matters: marks added
// in 10 and 11 do not reorder, U+1F16C and the Latin Extended-F letters do not decompose), so
// ICU's current data is filtered to the characters Unicode 9 had; newer ones pass through.
// An exhaustive check over all code points: tests/tokenizer/diff_tokenizers.py --all-chars.
constexpr const char* reference_unicode_set = "[:age=9.0:]";

void replace_all(std::string& text, const Pattern& pattern, std::string_view content, RegexScratch& scratch) {
  if (pattern.is_empty_literal()) return;  // the reference's literal replace never matches ""
  std::string out;
  size_t prev = 0;
  bool any = false;
  pattern.regex().for_each_match(text, scratch, [&](size_t begin, size_t end) {
    any = true;
    out.append(text, prev, begin - prev);
    out += content;
    prev = end;
  });
  if (!any) return;
  out.append(text, prev, std::string::npos);
  text = std::move(out);
}

void strip_white_space(std::string& text, bool left, bool right) {
  size_t begin = 0, end = text.size();
  if (left) {
    while (begin < end) {
      size_t pos = begin;
      if (!unicode::is_white_space(utf8::decode(text, pos))) break;
      begin = pos;
    }
  }
  if (right) {
    while (end > begin) {
      size_t start = end - 1;
      while (start > begin && (uint8_t(text[start]) & 0xC0) == 0x80) --start;
      size_t pos = start;
      if (!unicode::is_white_space(utf8::decode(text, pos))) break;
      end = start;
    }
  }
  text = text.substr(begin, end - begin);
}

// Character by character full lowercase mapping, without context (what Rust's
// char::to_lowercase does; ICU on a whole string would apply the final-sigma rule).
void lowercase(std::string& text) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    char32_t c = utf8::decode(text, pos);
    if (c < 0x80) {
      out += char(c >= 'A' && c <= 'Z' ? c + 32 : c);
      continue;
    }
    icu::UnicodeString one{UChar32(c)};
    one.toLower(icu::Locale::getRoot());
    one.toUTF8String(out);
  }
  text = std::move(out);
}

}  // namespace

struct Normalizer::UnicodeNormalizer {
  icu::UnicodeSet assigned;
  std::unique_ptr<icu::FilteredNormalizer2> normalizer;

  explicit UnicodeNormalizer(const std::string& form) {
    UErrorCode status = U_ZERO_ERROR;
    const icu::Normalizer2* base = form == "NFC"    ? icu::Normalizer2::getNFCInstance(status)
                                   : form == "NFD"  ? icu::Normalizer2::getNFDInstance(status)
                                   : form == "NFKC" ? icu::Normalizer2::getNFKCInstance(status)
                                                    : icu::Normalizer2::getNFKDInstance(status);
    if (U_FAILURE(status) || !base) fail("Unicode normalization data unavailable: {}", u_errorName(status));
    assigned.applyPattern(icu::UnicodeString(reference_unicode_set), status);
    if (U_FAILURE(status)) fail("Unicode character data unavailable: {}", u_errorName(status));
    assigned.freeze();
    normalizer = std::make_unique<icu::FilteredNormalizer2>(*base, assigned);
  }
};

Normalizer Normalizer::from_json(const Json& j, std::string_view what) {
  Normalizer n;
  if (!j.is_null()) n.add_from_json(j, std::string(what));
  return n;
}

void Normalizer::add_from_json(const Json& j, const std::string& what) {
  std::string type = json_get<std::string>(j, "type", what);
  if (type == "Sequence") {
    const Json& list = j.contains("normalizers") ? j["normalizers"] : Json();
    if (!list.is_array()) fail("{}: Sequence needs a 'normalizers' array", what);
    for (size_t i = 0; i < list.size(); ++i) add_from_json(list[i], fmt::format("{}.normalizers[{}]", what, i));
  } else if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
    steps_.push_back(Unicode{std::make_shared<const UnicodeNormalizer>(type)});
  } else if (type == "Prepend") {
    steps_.push_back(Prepend{json_get<std::string>(j, "prepend", what)});
  } else if (type == "Replace") {
    if (!j.contains("pattern")) fail("{}: missing field 'pattern'", what);
    steps_.push_back(Replace{Pattern::from_json(j["pattern"], what + ".pattern"),
                             json_get<std::string>(j, "content", what)});
  } else if (type == "Strip") {
    steps_.push_back(Strip{json_get_opt<bool>(j, "strip_left", what).value_or(true),
                           json_get_opt<bool>(j, "strip_right", what).value_or(true)});
  } else if (type == "Lowercase") {
    steps_.push_back(Lowercase{});
  } else {
    fail("{}: unsupported normalizer type '{}' (supported: Sequence, NFC, NFD, NFKC, NFKD, Prepend, "
         "Replace, Strip, Lowercase)", what, type);
  }
}

void Normalizer::normalize(std::string& text, RegexScratch& scratch) const {
  for (const Step& step : steps_) {
    if (const auto* u = std::get_if<Unicode>(&step)) {
      const icu::Normalizer2& n = *u->impl->normalizer;
      UErrorCode status = U_ZERO_ERROR;
      if (n.isNormalizedUTF8(text, status) && U_SUCCESS(status)) continue;
      status = U_ZERO_ERROR;
      std::string out;
      icu::StringByteSink<std::string> sink(&out, int32_t(text.size()));
      n.normalizeUTF8(0, text, sink, nullptr, status);
      if (U_FAILURE(status)) fail("Unicode normalization failed: {}", u_errorName(status));
      text = std::move(out);
    } else if (const auto* p = std::get_if<Prepend>(&step)) {
      if (!text.empty()) text.insert(0, p->prefix);
    } else if (const auto* r = std::get_if<Replace>(&step)) {
      replace_all(text, r->pattern, r->content, scratch);
    } else if (const auto* s = std::get_if<Strip>(&step)) {
      strip_white_space(text, s->left, s->right);
    } else if (std::holds_alternative<Lowercase>(step)) {
      lowercase(text);
    }
  }
}

}  // namespace dsi
