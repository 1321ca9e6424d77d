// The regex layer: Oniguruma meanings of \s, \h, $ and \w on PCRE2, general categories that
// include characters newer than PCRE2's Unicode tables, and match iteration.
#include <gtest/gtest.h>

#include "core/error.h"
#include "tokenizer/regex.h"

namespace dsi {
namespace {

std::vector<std::pair<size_t, size_t>> matches(const std::string& pattern, std::string_view text) {
  Regex re(pattern);
  RegexScratch scratch;
  std::vector<std::pair<size_t, size_t>> out;
  re.for_each_match(text, scratch, [&](size_t b, size_t e) { out.emplace_back(b, e); });
  return out;
}

bool matches_whole(const std::string& pattern, std::string_view text) {
  auto m = matches(pattern, text);
  return m.size() == 1 && m[0].first == 0 && m[0].second == text.size();
}

TEST(TokenizerRegex, OnigurumaClassMeanings) {
  EXPECT_TRUE(matches_whole("\\s", "\u3000"));
  EXPECT_TRUE(matches_whole("\\s", "\u0085"));
  EXPECT_TRUE(matches("\\s", "\u180e").empty());  // not white space for Oniguruma (PCRE2's \s takes it)
  EXPECT_TRUE(matches_whole("\\S", "\u180e"));
  EXPECT_TRUE(matches_whole("\\h+", "deadBEEF09"));  // hex digits, not horizontal space
  EXPECT_TRUE(matches("\\h", " \t").empty());
  EXPECT_TRUE(matches_whole("\\w+", "e\u0301x_9\u0663"));  // marks and all numbers are word characters
  EXPECT_TRUE(matches_whole("[^\\s\\p{L}]+", "1!"));
}

TEST(TokenizerRegex, AnchorsMatchAtLineEnds) {
  // As the reference splits them: [('a',), ('  ',), ('\nb',), (' \n',)] and ^ after a newline.
  auto m = matches("\\s+$", "a  \nb \n");
  std::vector<std::pair<size_t, size_t>> expected = {{1, 3}, {5, 7}};
  EXPECT_EQ(m, expected);
  EXPECT_EQ(matches("^b", "a\nb \n"), (std::vector<std::pair<size_t, size_t>>{{2, 3}}));
}

TEST(TokenizerRegex, CategoriesKnowNewerCharacters) {
  // U+1FA77 PINK HEART and U+31350 (CJK Extension H) are Unicode 15.0, newer than PCRE2 10.42.
  EXPECT_TRUE(matches_whole("\\p{So}", "\U0001FA77"));
  EXPECT_TRUE(matches_whole("\\p{S}+", "\U0001FA77\U0001F600"));
  EXPECT_TRUE(matches_whole("\\p{L}", "\U00031350"));
  EXPECT_TRUE(matches("[^\\p{L}\\p{S}]", "\U00031350\U0001FA77").empty());
  EXPECT_TRUE(matches_whole("\\P{L}", "1"));
}

TEST(TokenizerRegex, IterationAdvancesPastEmptyMatches) {
  auto m = matches("a*", "baaac");
  std::vector<std::pair<size_t, size_t>> expected = {{0, 0}, {1, 4}, {5, 5}};
  EXPECT_EQ(m, expected);
  EXPECT_EQ(matches("x", "").size(), 0u);
}

TEST(TokenizerRegex, LongInputsDoNotExhaustTheStack) {
  std::string spaces(2'000'000, ' ');
  spaces += "x";
  auto m = matches("\\s+(?!\\S)|\\s+", spaces);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].second, spaces.size() - 2);
}

TEST(TokenizerRegex, SyntaxErrorsNameThePattern) {
  try {
    Regex bad("a(b");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("regex 'a(b'"), std::string::npos);
  }
}

}  // namespace
}  // namespace dsi
