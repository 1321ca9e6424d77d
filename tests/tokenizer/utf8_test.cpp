// UTF-8 helpers: lossy decoding must replace exactly the maximal ill-formed subparts (as
// Rust's from_utf8_lossy, which the reference decoder uses), and the streaming decoder must
// hold back exactly a truncated final character.
#include <gtest/gtest.h>

#include "tokenizer/byte_level.h"
#include "tokenizer/utf8.h"

namespace dsi {
namespace {

const std::string fffd = "\xEF\xBF\xBD";

TEST(TokenizerUtf8, LossyKeepsValidText) {
  std::string text = "plain ascii, é, 中文, 😀";
  EXPECT_EQ(utf8::lossy(text), text);
  EXPECT_TRUE(utf8::is_valid(text));
}

TEST(TokenizerUtf8, LossyReplacesMaximalSubparts) {
  // Unicode 15 section 3.9, table 3-8: each maximal subpart becomes one U+FFFD.
  EXPECT_EQ(utf8::lossy("\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64"),
            "a" + fffd + fffd + fffd + "b" + fffd + "c" + fffd + fffd + "d");
  EXPECT_EQ(utf8::lossy("\xE4\xB8"), fffd);          // a truncated 3-byte character: one subpart
  EXPECT_EQ(utf8::lossy("\xED\xA0\x80"), fffd + fffd + fffd);  // surrogates are ill-formed
  EXPECT_EQ(utf8::lossy("\xC0\xAF"), fffd + fffd);  // overlong
  EXPECT_EQ(utf8::lossy("\xF4\x90\x80\x80"), fffd + fffd + fffd + fffd);  // above U+10FFFF
  EXPECT_EQ(utf8::lossy("\xF0\x9F\x98"), fffd);
}

TEST(TokenizerUtf8, ValidPrefixStopsAtTheFirstBadByte) {
  EXPECT_EQ(utf8::valid_prefix_length("ab\xE4\xB8\xAD" "c\xFF" "d"), 6u);
  EXPECT_EQ(utf8::valid_prefix_length("ab\xE4\xB8"), 2u);
}

TEST(TokenizerUtf8, TruncatedTailIsOnlyAPossiblyValidPrefix) {
  EXPECT_EQ(utf8::truncated_tail_length("abc"), 0u);
  EXPECT_EQ(utf8::truncated_tail_length("a\xE4"), 1u);
  EXPECT_EQ(utf8::truncated_tail_length("a\xE4\xB8"), 2u);
  EXPECT_EQ(utf8::truncated_tail_length("a\xE4\xB8\xAD"), 0u);  // complete
  EXPECT_EQ(utf8::truncated_tail_length("a\xF0\x9F\x98"), 3u);
  EXPECT_EQ(utf8::truncated_tail_length("a\xE0\x80"), 0u);  // E0 80 can never be valid
  EXPECT_EQ(utf8::truncated_tail_length("a\x80"), 0u);      // a stray continuation byte is final
  EXPECT_EQ(utf8::truncated_tail_length(""), 0u);
}

TEST(TokenizerByteLevel, EveryByteRoundTrips) {
  std::string all;
  for (int b = 0; b < 256; ++b) all += char(b);
  std::string mapped;
  byte_level::append_encoded(mapped, all);
  EXPECT_TRUE(utf8::is_valid(mapped));
  std::string back;
  ASSERT_TRUE(byte_level::append_decoded(back, mapped));
  EXPECT_EQ(back, all);
  // GPT-2's alphabet: ' ' is U+0120 ('Ġ'), '\n' is U+010A ('Ċ'), printable ASCII is itself.
  EXPECT_EQ(byte_level::byte_to_char(' '), U'\u0120');
  EXPECT_EQ(byte_level::byte_to_char('\n'), U'\u010A');
  EXPECT_EQ(byte_level::byte_to_char('A'), U'A');
  std::string outside;
  EXPECT_FALSE(byte_level::append_decoded(outside, "<｜User｜>"));
  EXPECT_TRUE(outside.empty());
}

}  // namespace
}  // namespace dsi
