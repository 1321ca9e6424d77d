#pragma once
// Where the tokenizer tests find their inputs (the source tree is compiled in).
#include <string>

#include "../common/test_paths.h"

namespace dsi::test {

inline std::string v3_tokenizer_dir() { return source_dir() + "/assets/tokenizer/deepseek-v3"; }
inline std::string tokenizer_data_dir() { return source_dir() + "/tests/data/tokenizer"; }
inline std::string template_dir() { return source_dir() + "/tests/tokenizer/templates"; }

}  // namespace dsi::test
