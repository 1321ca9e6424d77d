// The grammar module from its definitions: regexes match what they should, JSON schemas
// generate only documents that satisfy them (random walks through the automaton, each
// result parsed and checked), and token masks over the real DeepSeek-V3 vocabulary equal
// the brute-force answer (every token whose bytes the automaton reads from the state).
#include <gtest/gtest.h>

#include <random>
#include <set>

#include "core/error.h"
#include "grammar/constraint.h"
#include "grammar/json_schema.h"
#include "server/structured_output.h"
#include "../tokenizer/test_paths.h"
#include "tokenizer/tokenizer.h"

namespace dsi::grammar {
namespace {

std::shared_ptr<const TokenTrie> byte_trie() {  // one token per byte: masks are byte sets
  std::vector<std::string> v;
  for (int b = 0; b < 256; ++b) v.emplace_back(1, char(b));
  return std::make_shared<const TokenTrie>(v);
}

bool matches(const std::string& regex, const std::string& text) {
  Automaton a(compile_regex(regex), byte_trie());
  int s = a.start();
  for (char c : text) s = a.step(s, uint8_t(c));
  return a.accepting(s);
}

TEST(Regex, MatchesWholeStrings) {
  EXPECT_TRUE(matches("[0-9]{3}-[0-9]{4}", "555-1234"));
  EXPECT_FALSE(matches("[0-9]{3}-[0-9]{4}", "555-12345"));
  EXPECT_TRUE(matches("(?:ab|c)+d?", "abcabd"));
  EXPECT_FALSE(matches("(?:ab|c)+d?", "abd d"));
  EXPECT_TRUE(matches("^\\w+@\\w+\\.com$", "me@x.com"));
  EXPECT_TRUE(matches("a{2,}", "aaaa"));
  EXPECT_FALSE(matches("a{2,}", "a"));
  EXPECT_TRUE(matches("[^\"]*", "h\xC3\xA9llo"));      // a negated class takes non-ASCII characters
  EXPECT_FALSE(matches("[^\"]*", "\xC3"));             // but only whole UTF-8 sequences
  EXPECT_TRUE(matches(".", "\xE2\x82\xAC"));           // one character, three bytes
  EXPECT_TRUE(matches("\\u00e9|x", "\xC3\xA9"));
  EXPECT_TRUE(matches(escape_regex("a.b*(c)"), "a.b*(c)"));
  EXPECT_FALSE(matches(escape_regex("a.b"), "axb"));
}

TEST(Regex, BadPatternsAreNamedErrors) {
  for (const char* bad : {"(ab", "a{3,1}", "[z-a]", "*a", "a{5000}", "(?=x)", "\\q"}) {
    try {
      compile_regex(bad);
      ADD_FAILURE() << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("regex:"), std::string::npos) << e.what();
    }
  }
}

// A random string of the automaton's language: random allowed bytes, stopping at an
// accepting state with probability 1/4 (or when no byte can follow).
std::string random_walk(const Automaton& a, std::mt19937_64& rng, size_t limit = 4000) {
  std::string out;
  int s = a.start();
  while (out.size() < limit) {
    std::vector<int> bytes;
    for (int b = 0; b < 256; ++b)
      if (a.step(s, uint8_t(b)) != Automaton::kDead) bytes.push_back(b);
    if (a.accepting(s) && (bytes.empty() || rng() % 4 == 0)) return out;
    if (bytes.empty()) break;
    int b = bytes[rng() % bytes.size()];
    out.push_back(char(b));
    s = a.step(s, uint8_t(b));
  }
  return "<no end>";
}

TEST(JsonSchema, GeneratesOnlyDocumentsOfTheSchema) {
  const Json schema = Json::parse(R"({
    "type": "object",
    "properties": {
      "name": {"type": "string", "maxLength": 6},
      "age": {"type": "integer", "minimum": 0, "maximum": 130},
      "score": {"type": "number"},
      "kind": {"enum": ["cat", "dog", 3]},
      "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}, "minItems": 1, "maxItems": 3},
      "owner": {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/person"}]},
      "when": {"type": "string", "format": "date"},
      "code": {"type": "string", "pattern": "^[A-Z]{2}[0-9]$"}
    },
    "required": ["name", "age", "tags"],
    "$defs": {
      "tag": {"type": "string", "enum": ["x", "y"]},
      "person": {"type": "object", "properties": {"id": {"const": 7}, "ok": {"type": "boolean"}},
                 "required": ["id"], "additionalProperties": false}
    }})");
  Automaton a(compile_regex(json_schema_regex(schema)), byte_trie());
  std::mt19937_64 rng(1);
  std::set<std::string> keys_seen;
  for (int i = 0; i < 300; ++i) {
    const std::string text = random_walk(a, rng);
    SCOPED_TRACE(text);
    const Json j = Json::parse(text);  // throws on invalid JSON
    ASSERT_TRUE(j.is_object());
    ASSERT_TRUE(j["name"].is_string());
    EXPECT_LE(j["name"].get<std::string>().size(), 6u * 4);  // 6 characters, of up to 4 bytes
    ASSERT_TRUE(j["age"].is_number_integer());
    EXPECT_GE(j["age"].get<int64_t>(), 0);
    EXPECT_LE(j["age"].get<int64_t>(), 130);
    ASSERT_TRUE(j["tags"].is_array());
    EXPECT_GE(j["tags"].size(), 1u);
    EXPECT_LE(j["tags"].size(), 3u);
    for (const auto& t : j["tags"]) EXPECT_TRUE(t == "x" || t == "y");
    if (j.contains("kind")) {
      EXPECT_TRUE(j["kind"] == "cat" || j["kind"] == "dog" || j["kind"] == 3);
    }
    if (j.contains("score")) {
      EXPECT_TRUE(j["score"].is_number());
    }
    if (j.contains("owner") && !j["owner"].is_null()) {
      EXPECT_EQ(j["owner"]["id"], 7);
      for (const auto& [k, v] : j["owner"].items()) EXPECT_TRUE(k == "id" || (k == "ok" && v.is_boolean()));
    }
    if (j.contains("when")) {
      EXPECT_EQ(j["when"].get<std::string>().size(), 10u);
    }
    if (j.contains("code")) {
      EXPECT_TRUE(matches("[A-Z]{2}[0-9]", j["code"].get<std::string>()));
    }
    for (const auto& [k, v] : j.items()) keys_seen.insert(k);
  }
  EXPECT_EQ(keys_seen.size(), 8u);  // the walks reach every optional property
}

TEST(JsonSchema, AnyJsonObjectAndErrors) {
  Automaton a(compile_regex(json_object_regex()), byte_trie());
  std::mt19937_64 rng(2);
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(Json::parse(random_walk(a, rng)).is_object());
  for (const char* bad : {R"({"type": "strin"})", R"({"$ref": "#/$defs/none"})", R"({"$ref": "http://x"})",
                          R"({"type": "object", "properties": {"a": {}}, "required": ["b"]})",
                          R"({"$defs": {"n": {"type": "array", "items": {"$ref": "#/$defs/n"}}}, "$ref": "#/$defs/n"})"})
    EXPECT_THROW(json_schema_regex(Json::parse(bad)), Error) << bad;
}

TEST(TokenMask, EqualsBruteForceOnTheRealVocabulary) {
  const Tokenizer tok = Tokenizer::from_dir(test::v3_tokenizer_dir());
  const std::vector<std::string> bytes = server::vocabulary_bytes(tok, 129280);
  auto trie = std::make_shared<const TokenTrie>(bytes);
  const Json schema = Json::parse(R"({"type": "object", "properties": {"a": {"type": "array", "items":
      {"type": "object", "properties": {"b": {"type": "string"}, "c": {"type": "integer"}}, "required": ["b", "c"]}}},
      "required": ["a"]})");
  GrammarCache cache(trie);
  auto c = cache.get(SpecKind::json_schema, schema);
  EXPECT_EQ(cache.get(SpecKind::json_schema, schema), c);  // compiled once
  const Automaton& a = dynamic_cast<const GrammarConstraint&>(*c).automaton();
  // States along a document, each checked against every token.
  const std::string doc = R"({"a":[{"b":"h\u00e9 x","c":-12},{"b":"","c":0}]})";
  int s = a.start();
  size_t multi_terminal = 0;
  for (size_t i = 0; i <= doc.size(); ++i) {
    auto allowed = a.allowed(s);
    std::vector<int32_t> brute;
    for (int32_t t = 0; t < 129280; ++t)
      if (a.advance(s, t) != Automaton::kDead) brute.push_back(t);
    ASSERT_EQ(*allowed, brute) << "at byte " << i;
    for (int32_t t : brute) multi_terminal += bytes[size_t(t)].find_first_of(":,{[") != std::string::npos &&
                                              bytes[size_t(t)].size() > 1;
    if (i == doc.size()) break;
    s = a.step(s, uint8_t(doc[i]));
    ASSERT_NE(s, Automaton::kDead) << "at byte " << i;
  }
  EXPECT_TRUE(a.accepting(s));
  EXPECT_GT(multi_terminal, 0u);  // tokens such as `":` or `},{` span several terminals
  // Special tokens are never allowed; EOS comes from can_end.
  const auto next = c->next({});
  EXPECT_FALSE(next.can_end);
  EXPECT_FALSE(std::binary_search(next.tokens->begin(), next.tokens->end(), *tok.eos_token_id()));
}

}  // namespace
}  // namespace dsi::grammar
