#pragma once
// The `normalizer` of tokenizer.json: NFC/NFD/NFKC/NFKD, Prepend, Replace, Strip, Lowercase
// and Sequence of them. Only the normalized text matters here (ids, not offsets).
// Immutable after loading; normalize() may be called from any number of threads.
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/json.h"
#include "tokenizer/pattern.h"

namespace dsi {

class Normalizer {
 public:
  // null gives the identity; an unsupported type is an Error naming it.
  static Normalizer from_json(const Json& j, std::string_view what = "normalizer");

  bool is_identity() const { return steps_.empty(); }

  // Rewrites `text` (valid UTF-8) in place.
  void normalize(std::string& text, RegexScratch& scratch) const;

 private:
  struct UnicodeNormalizer;  // ICU's, limited to the reference's Unicode version
  struct Unicode {
    std::shared_ptr<const UnicodeNormalizer> impl;
  };
  struct Prepend {
    std::string prefix;
  };
  struct Replace {
    Pattern pattern;
    std::string content;
  };
  struct Strip {
    bool left;
    bool right;
  };
  struct Lowercase {};
  using Step = std::variant<Unicode, Prepend, Replace, Strip, Lowercase>;

  void add_from_json(const Json& j, const std::string& what);

  std::vector<Step> steps_;
};

}  // namespace dsi
