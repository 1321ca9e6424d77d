// Every reference case of tests/data/tokenizer/cases.json (made by the Hugging Face
// `tokenizers` library and jinja2, see ../shared/tools/gen_tok.py) must match exactly.
#include <gtest/gtest.h>

#include "core/json.h"
#include "core/mapped_file.h"
#include "test_paths.h"
#include "tokenizer/tokenizer.h"

namespace dsi {
namespace {

const Json& cases() {
  static const Json doc = parse_json(read_text_file(test::tokenizer_data_dir() + "/cases.json"), "cases.json");
  return doc;
}

const Tokenizer& v3() {
  static const Tokenizer tok = Tokenizer::from_dir(test::v3_tokenizer_dir());
  return tok;
}

std::vector<int32_t> ids_of(const Json& j) { return j.get<std::vector<int32_t>>(); }

TEST(TokenizerCases, EncodeMatchesReference) {
  const Json& list = cases()["encode"];
  ASSERT_GT(list.size(), 300u);
  int bos = *v3().bos_token_id();
  for (const Json& c : list) {
    std::string text = c["text"];
    std::vector<int32_t> expected = ids_of(c["ids"]);
    EXPECT_EQ(v3().encode(text, false), expected) << "text: " << text;
    // add_bos_token is true in tokenizer_config.json: add_special_tokens prepends the BOS.
    std::vector<int32_t> with_bos = v3().encode(text, true);
    ASSERT_FALSE(with_bos.empty());
    EXPECT_EQ(with_bos[0], bos);
    EXPECT_EQ(std::vector<int32_t>(with_bos.begin() + 1, with_bos.end()), expected);
    EXPECT_EQ(v3().decode(expected, false), c["decoded"].get<std::string>()) << "text: " << text;
  }
}

TEST(TokenizerCases, DecodeMatchesReference) {
  const Json& list = cases()["decode"];
  ASSERT_GT(list.size(), 10u);
  for (const Json& c : list) {
    std::vector<int32_t> ids = ids_of(c["ids"]);
    EXPECT_EQ(v3().decode(ids, false), c["text"].get<std::string>()) << c["ids"].dump();
    EXPECT_EQ(v3().decode(ids, true), c["text_skip_special"].get<std::string>()) << c["ids"].dump();
  }
}

TEST(TokenizerCases, ChatTemplateMatchesReference) {
  const Json& list = cases()["chat"];
  ASSERT_GE(list.size(), 12u);
  for (const Json& c : list) {
    std::string text = v3().apply_chat_template(c["messages"], c["add_generation_prompt"].get<bool>(), Json(),
                                                Json::object());
    EXPECT_EQ(text, c["text"].get<std::string>()) << c["messages"].dump();
    EXPECT_EQ(v3().encode(text, false), ids_of(c["ids"])) << text;
  }
}

TEST(TokenizerCases, EmbeddedDefaultIsTheV3Tokenizer) {
  Tokenizer embedded = Tokenizer::embedded_default();
  EXPECT_EQ(embedded.vocab_size(), 128815);  // get_vocab_size(with_added_tokens=True) of the reference
  EXPECT_EQ(embedded.vocab_size(), v3().vocab_size());
  for (const Json& c : cases()["encode"]) EXPECT_EQ(embedded.encode(c["text"].get<std::string>(), false), ids_of(c["ids"]));
  const Json& chat = cases()["chat"][0];
  EXPECT_EQ(embedded.apply_chat_template(chat["messages"], chat["add_generation_prompt"].get<bool>(), Json(), Json()),
            chat["text"].get<std::string>());
}

}  // namespace
}  // namespace dsi
