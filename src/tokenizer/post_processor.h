#pragma once
// What encode(text, add_special_tokens = true) adds around the ids of one sequence: the
// `post_processor` of tokenizer.json (TemplateProcessing, BertProcessing, RobertaProcessing,
// ByteLevel which adds nothing, Sequence of them), reduced to the ids put before and after.
#include <cstdint>
#include <string_view>
#include <vector>

#include "core/json.h"

namespace dsi {

struct SpecialTokenWrap {
  std::vector<int32_t> prefix;
  std::vector<int32_t> suffix;
};

// null adds nothing; an unsupported type, or a template for pairs only, is an Error.
SpecialTokenWrap post_processor_from_json(const Json& j, std::string_view what = "post_processor");

}  // namespace dsi
