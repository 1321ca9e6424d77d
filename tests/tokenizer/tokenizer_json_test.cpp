// tokenizer.json features on small hand-made tokenizers: both merges forms, every Split
// behavior, Digits, added-token options, post-processors and BOS from tokenizer_config.json,
// and load errors that name the unsupported feature.
#include <gtest/gtest.h>

#include "core/json.h"
#include "tokenizer/tokenizer.h"

namespace dsi {
namespace {

// A byte-level BPE over the letters a-e, space (Ġ) and digits, with merges "a b" -> "ab",
// "ab c" -> "abc", "Ġ a" -> "Ġa".
Json tiny_tokenizer_json() {
  Json vocab = Json::object();
  int id = 0;
  for (const char* t : {"a", "b", "c", "d", "e", "Ġ", "0", "1", "2", "!", "<", ">", "m", "s", "k", "x"}) vocab[t] = id++;
  for (const char* t : {"ab", "abc", "Ġa"}) vocab[t] = id++;
  Json j = {{"version", "1.0"},
            {"truncation", nullptr},
            {"padding", nullptr},
            {"added_tokens", Json::array()},
            {"normalizer", nullptr},
            {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}},
            {"post_processor", nullptr},
            {"decoder", {{"type", "ByteLevel"}}},
            {"model",
             {{"type", "BPE"},
              {"dropout", nullptr},
              {"unk_token", nullptr},
              {"vocab", vocab},
              {"merges", Json::array({"a b", Json::array({"ab", "c"}), "Ġ a"})}}}};
  return j;
}

Tokenizer load(const Json& j, const std::string& config = "") {
  return Tokenizer::from_json_text(j.dump(), config, "test");
}

std::string load_error(const Json& j, const std::string& config = "") {
  try {
    load(j, config);
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

std::vector<int32_t> ids(std::initializer_list<int32_t> l) { return l; }

TEST(TokenizerJson, MergesInBothFormsApplyInRankOrder) {
  Tokenizer tok = load(tiny_tokenizer_json());
  EXPECT_EQ(tok.encode("abc", false), ids({17}));
  EXPECT_EQ(tok.encode("abcab", false), ids({17, 16}));
  EXPECT_EQ(tok.encode(" abc", false), ids({5, 17}));  // "a b" (rank 0) wins over "Ġ a" (rank 2)
  EXPECT_EQ(tok.encode(" ac", false), ids({18, 2}));
  EXPECT_EQ(tok.decode(tok.encode(" abc", false), false), " abc");
  EXPECT_EQ(tok.vocab_size(), 19);
  EXPECT_EQ(tok.token_to_id("Ġa"), 18);
  EXPECT_EQ(tok.id_to_token(16), "ab");
  EXPECT_FALSE(tok.id_to_token(19).has_value());
}

TEST(TokenizerJson, UnknownIdsDecodeToNothing) {
  Tokenizer tok = load(tiny_tokenizer_json());
  std::vector<int32_t> with_unknown = {0, 19, 1000000, -3, 1};
  EXPECT_EQ(tok.decode(with_unknown, false), "ab");
  EXPECT_FALSE(tok.is_known(19));
  EXPECT_FALSE(tok.is_special(-1));
}

TEST(TokenizerJson, SplitBehaviors) {
  // The reference's documented example: splitting "the-final--countdown" on '-'.
  auto pieces = [](const std::string& behavior, bool invert) {
    Json j = tiny_tokenizer_json();
    Json vocab = j["model"]["vocab"];
    // One token per piece makes the pieces visible in the ids: map whole pieces to new ids.
    for (const char* t : {"the", "final", "countdown", "-", "--", "the-", "final-", "-final", "-countdown",
                          "countdown-", "t", "h", "f", "i", "n", "l", "o", "u", "w"})
      if (!vocab.contains(t)) vocab[t] = int(vocab.size());
    j["model"]["vocab"] = vocab;
    j["model"]["merges"] = Json::array();
    j["model"]["ignore_merges"] = true;  // whole pieces found in the vocab are one token
    j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", behavior}, {"invert", invert}};
    j["decoder"] = nullptr;
    Tokenizer tok = load(j);
    return tok.decode(tok.encode("the-final--countdown", false), false);  // tokens joined with spaces
  };
  EXPECT_EQ(pieces("Removed", false), "the final countdown");
  EXPECT_EQ(pieces("Isolated", false), "the - final - - countdown");
  EXPECT_EQ(pieces("MergedWithPrevious", false), "the- final- - countdown");
  EXPECT_EQ(pieces("MergedWithNext", false), "the -final - -countdown");
  EXPECT_EQ(pieces("Contiguous", false), "the - final -- countdown");
  EXPECT_EQ(pieces("Removed", true), "- - -");
}

TEST(TokenizerJson, DigitsPreTokenizer) {
  Json j = tiny_tokenizer_json();
  j["model"]["vocab"]["10"] = 19;
  j["model"]["vocab"]["210"] = 20;
  j["model"]["merges"] = Json::array({"1 0", "2 10"});
  j["pre_tokenizer"] = {{"type", "Sequence"},
                        {"pretokenizers",
                         {{{"type", "Digits"}, {"individual_digits", true}},
                          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
  EXPECT_EQ(load(j).encode("210", false), ids({8, 7, 6}));
  j["pre_tokenizer"]["pretokenizers"][0]["individual_digits"] = false;
  EXPECT_EQ(load(j).encode("210a210", false), ids({20, 0, 20}));
}

TEST(TokenizerJson, AddedTokenOptions) {
  Json j = tiny_tokenizer_json();
  j["added_tokens"] = Json::array(
      {{{"id", 30}, {"content", "<m>"}, {"single_word", false}, {"lstrip", true}, {"rstrip", true},
        {"normalized", false}, {"special", true}},
       {{"id", 31}, {"content", "sk"}, {"single_word", true}, {"lstrip", false}, {"rstrip", false},
        {"normalized", false}, {"special", false}}});
  Tokenizer tok = load(j);
  // lstrip/rstrip swallow the white space around the token.
  EXPECT_EQ(tok.encode("a  <m>  b", false), ids({0, 30, 1}));
  // single_word: only where it is not part of a larger word.
  EXPECT_EQ(tok.encode("sk", false), ids({31}));
  EXPECT_EQ(tok.encode("ask", false), ids({0, 13, 14}));
  EXPECT_EQ(tok.encode("a sk!", false), ids({0, 5, 31, 9}));
  EXPECT_TRUE(tok.is_special(30));
  EXPECT_FALSE(tok.is_special(31));
  EXPECT_EQ(tok.decode(ids({0, 30, 1}), false), "a<m>b");
  EXPECT_EQ(tok.decode(ids({0, 30, 1}), true), "ab");
  EXPECT_EQ(tok.vocab_size(), 32);
  EXPECT_FALSE(tok.is_known(25));  // a gap between the vocab and the added tokens
}

TEST(TokenizerJson, TemplatePostProcessorAndBosFromConfig) {
  Json j = tiny_tokenizer_json();
  j["added_tokens"] = Json::array({{{"id", 30}, {"content", "<s>"}, {"special", true}, {"normalized", false}},
                                   {{"id", 31}, {"content", "</s>"}, {"special", true}, {"normalized", false}}});
  j["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                  {{"SpecialToken", {{"id", "</s>"}, {"type_id", 0}}}}}},
      {"pair", Json::array()},
      {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {30}}, {"tokens", {"<s>"}}}},
                          {"</s>", {{"id", "</s>"}, {"ids", {31}}, {"tokens", {"</s>"}}}}}}};
  EXPECT_EQ(load(j).encode("a", true), ids({30, 0, 31}));
  EXPECT_EQ(load(j).encode("a", false), ids({0}));
  // tokenizer_config.json's add_bos_token / add_eos_token, when given, decide instead.
  Tokenizer configured = load(j, R"({"bos_token": {"content": "<s>"}, "eos_token": "</s>", "add_bos_token": true,
                                     "add_eos_token": false})");
  EXPECT_EQ(configured.encode("a", true), ids({30, 0}));
  EXPECT_EQ(configured.bos_token_id(), 30);
  EXPECT_EQ(configured.eos_token_id(), 31);
  EXPECT_FALSE(configured.has_chat_template());
  EXPECT_NE(load_error(j, R"({"bos_token": "<nope>"})").find("bos_token '<nope>' is not in the vocabulary"),
            std::string::npos);
}

TEST(TokenizerJson, NormalizersApplyBeforePreTokenization) {
  Json j = tiny_tokenizer_json();
  j["normalizer"] = {{"type", "Sequence"},
                     {"normalizers",
                      {{{"type", "NFKC"}},
                       {{"type", "Replace"}, {"pattern", {{"String", "e"}}}, {"content", "d"}},
                       {{"type", "Prepend"}, {"prepend", "x"}}}}};
  Tokenizer tok = load(j);
  EXPECT_EQ(tok.encode("ｅ", false), ids({15, 3}));  // NFKC: fullwidth e -> e -> d, then "x" in front
}

TEST(TokenizerJson, UnsupportedFeaturesAreLoadErrorsNamingThem) {
  auto error_with = [](auto edit) {
    Json j = tiny_tokenizer_json();
    edit(j);
    return load_error(j);
  };
  auto contains = [](const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
  };
  EXPECT_TRUE(contains(error_with([](Json& j) { j["pre_tokenizer"] = {{"type", "Metaspace"}}; }),
                       "pre_tokenizer: unsupported pre-tokenizer type 'Metaspace'"));
  EXPECT_TRUE(contains(error_with([](Json& j) { j["normalizer"] = {{"type", "BertNormalizer"}}; }),
                       "normalizer: unsupported normalizer type 'BertNormalizer'"));
  EXPECT_TRUE(contains(error_with([](Json& j) { j["decoder"] = {{"type", "WordPiece"}}; }),
                       "decoder: unsupported decoder type 'WordPiece'"));
  EXPECT_TRUE(contains(error_with([](Json& j) { j["model"]["type"] = "Unigram"; }),
                       "model: unsupported model type 'Unigram'"));
  EXPECT_TRUE(contains(error_with([](Json& j) { j["model"]["dropout"] = 0.1; }), "unsupported option 'dropout'"));
  EXPECT_TRUE(contains(error_with([](Json& j) { j["model"]["continuing_subword_prefix"] = "##"; }),
                       "unsupported option 'continuing_subword_prefix'"));
  EXPECT_TRUE(contains(error_with([](Json& j) { j["truncation"] = {{"max_length", 5}}; }),
                       "'truncation' is not supported"));
  EXPECT_TRUE(contains(error_with([](Json& j) { j["model"]["merges"].push_back("a zz"); }),
                       "model.merges[3]: 'a' + 'zz': token 'zz' is not in the vocab"));
  EXPECT_TRUE(contains(error_with([](Json& j) { j["model"]["merges"].push_back("a b c"); }),
                       "is not two tokens separated by one space"));
  EXPECT_TRUE(contains(error_with([](Json& j) {
                         j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}},
                                               {"behavior", "Isolated"}};
                       }),
                       "pre_tokenizer.pattern: regex '(unclosed'"));
  EXPECT_TRUE(contains(error_with([](Json& j) {
                         j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "a"}}}, {"behavior", "Sideways"}};
                       }),
                       "unsupported split behavior 'Sideways'"));
  EXPECT_TRUE(contains(load_error(Json::array()), "test tokenizer.json: expected a JSON object"));
  EXPECT_TRUE(contains(load_error(Json::object()), "missing field 'model'"));
}

TEST(TokenizerJson, BrokenModelTemplateOnlyBreaksChatTemplating) {
  // A template that comes with the model may use what the interpreter does not support; the
  // tokenizer still loads and encodes, and apply_chat_template says why it cannot render.
  Tokenizer tok = load(tiny_tokenizer_json(), R"({"chat_template": "{% macro m() %}{% endmacro %}"})");
  EXPECT_EQ(tok.encode("ab", false), ids({16}));
  EXPECT_FALSE(tok.has_chat_template());
  try {
    tok.apply_chat_template(Json::array(), true, Json(), Json());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("line 1: unsupported tag 'macro'"), std::string::npos) << e.what();
  }
  // A template given explicitly must parse.
  EXPECT_THROW(Tokenizer::from_json_text(tiny_tokenizer_json().dump(), "", "test", "{% if %}"), Error);
}

TEST(TokenizerJson, InvalidUtf8InputIsAnError) {
  Tokenizer tok = load(tiny_tokenizer_json());
  EXPECT_THROW(tok.encode("ab\xFF", false), Error);
  EXPECT_TRUE(tok.encode("", true).empty());
}

}  // namespace
}  // namespace dsi
