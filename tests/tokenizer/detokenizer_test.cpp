// Streaming detokenization: what push() and finish() return, concatenated, equals decode() of
// the same ids (up to a stop string); nothing is emitted as a partial UTF-8 character, and
// text that may start a stop string is held back until it is known.
#include <gtest/gtest.h>

#include <random>

#include "core/json.h"
#include "test_paths.h"
#include "tokenizer/incremental_detokenizer.h"

namespace dsi {
namespace {

const Tokenizer& v3() {
  static const Tokenizer tok = Tokenizer::from_dir(test::v3_tokenizer_dir());
  return tok;
}

struct Streamed {
  std::vector<std::string> pieces;
  std::string text;
  bool stopped = false;
  int stop_index = -1;
};

Streamed stream(const Tokenizer& tok, const std::vector<int32_t>& ids, bool skip, std::vector<std::string> stops = {},
                std::vector<int32_t> prompt = {}) {
  IncrementalDetokenizer d(tok, skip, std::move(stops), prompt);
  Streamed s;
  for (int32_t id : ids) {
    DetokenizedText out = d.push(id);
    s.pieces.push_back(out.text);
    s.text += out.text;
    if (out.stopped) {
      s.stopped = true;
      s.stop_index = out.stop_index;
      return s;
    }
  }
  DetokenizedText out = d.finish();
  s.pieces.push_back(out.text);
  s.text += out.text;
  s.stopped = out.stopped;
  return s;
}

TEST(IncrementalDetokenizer, ConcatenationEqualsDecode) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> any_id(0, 129279);  // beyond the tokenizer, as lm_head is
  for (int trial = 0; trial < 400; ++trial) {
    std::vector<int32_t> ids(size_t(1 + rng() % 30));
    for (int32_t& id : ids) id = any_id(rng);
    for (bool skip : {false, true}) {
      Streamed s = stream(v3(), ids, skip);
      EXPECT_EQ(s.text, v3().decode(ids, skip));
      EXPECT_FALSE(s.stopped);
      // Every prefix of the stream is a prefix of the final text: nothing emitted early (a
      // U+FFFD for a character whose bytes were still coming) had to be taken back.
      std::string full = v3().decode(ids, skip), so_far;
      for (const std::string& piece : s.pieces) {
        so_far += piece;
        EXPECT_EQ(full.compare(0, so_far.size(), so_far), 0);
      }
    }
  }
}

TEST(IncrementalDetokenizer, NeverEmitsPartOfACharacter) {
  // 中 is E4 B8 AD: three byte-level tokens.
  auto byte_token = [](const char* ch) { return *v3().token_to_id(ch); };
  std::vector<int32_t> ids = {byte_token("ä"), byte_token("¸"), byte_token("Ń")};  // bytes E4, B8, AD
  ASSERT_EQ(v3().decode(ids, false), "中");
  Streamed s = stream(v3(), ids, false);
  EXPECT_EQ(s.pieces, (std::vector<std::string>{"", "", "中", ""}));
  // Cut short at the end, the sequence decodes to U+FFFD, as decode() does.
  std::vector<int32_t> cut = {v3().encode("ok", false)[0], byte_token("ä"), byte_token("¸")};
  Streamed c = stream(v3(), cut, false);
  EXPECT_EQ(c.pieces, (std::vector<std::string>{"ok", "", "", "\xEF\xBF\xBD"}));
  EXPECT_EQ(c.text, v3().decode(cut, false));
}

TEST(IncrementalDetokenizer, StopStringsSpanningTokens) {
  std::vector<int32_t> ids = v3().encode("Hello world, stop here please", false);
  Streamed s = stream(v3(), ids, false, {"never", "stop here"});
  EXPECT_TRUE(s.stopped);
  EXPECT_EQ(s.stop_index, 1);
  EXPECT_EQ(s.text, "Hello world, ");
  // "st" was held back until " here" showed it was the stop string: no piece ever ends in "st".
  for (const std::string& p : s.pieces) EXPECT_EQ(p.find("st"), std::string::npos) << p;

  // A prefix of a stop string that never completes is released, at the latest by finish().
  Streamed n = stream(v3(), ids, false, {"stop now"});
  EXPECT_FALSE(n.stopped);
  EXPECT_EQ(n.text, "Hello world, stop here please");

  // Of several stop strings, the one whose occurrence ends first wins.
  Streamed e = stream(v3(), v3().encode("abcdef", false), false, {"cdef", "", "bcd"});
  EXPECT_EQ(e.text, "a");
  EXPECT_EQ(e.stop_index, 2);  // empty stop strings match nothing but keep the numbering
}

TEST(IncrementalDetokenizer, AfterAStopNothingMore) {
  IncrementalDetokenizer d(v3(), false, {"b"});
  std::vector<int32_t> ids = v3().encode("a b c", false);
  std::string text;
  bool stopped = false;
  for (int32_t id : ids) {
    DetokenizedText out = d.push(id);
    text += out.text;
    if (out.stopped) stopped = true;
  }
  EXPECT_TRUE(stopped);
  EXPECT_EQ(text, "a ");
  EXPECT_TRUE(d.push(ids[0]).stopped);
  DetokenizedText end = d.finish();
  EXPECT_TRUE(end.stopped);
  EXPECT_EQ(end.text, "");
}

TEST(IncrementalDetokenizer, SkipsSpecialTokens) {
  std::vector<int32_t> ids = v3().encode("<｜begin▁of▁sentence｜><｜User｜>hi<｜end▁of▁sentence｜>", false);
  // <｜User｜> is an added token but not a special one in DeepSeek-V3's tokenizer.json.
  EXPECT_EQ(stream(v3(), ids, true).text, "<｜User｜>hi");
  EXPECT_EQ(stream(v3(), ids, false).text, "<｜begin▁of▁sentence｜><｜User｜>hi<｜end▁of▁sentence｜>");
}

// A Llama-style tokenizer (▁ for spaces, byte fallback, a decoder that strips the first space):
// its decoding depends on context, so the stream works from decoded prefixes.
Tokenizer metaspace_tokenizer() {
  Json vocab = {{"▁", 0}, {"a", 1}, {"b", 2}, {"▁a", 3}, {"▁b", 4}, {"<0xE4>", 5}, {"<0xB8>", 6}, {"<0xAD>", 7}};
  Json j = {
      {"normalizer", {{"type", "Sequence"}, {"normalizers", {{{"type", "Prepend"}, {"prepend", "▁"}},
                                                              {{"type", "Replace"}, {"pattern", {{"String", " "}}},
                                                               {"content", "▁"}}}}}},
      {"pre_tokenizer", nullptr},
      {"decoder", {{"type", "Sequence"},
                   {"decoders", {{{"type", "Replace"}, {"pattern", {{"String", "▁"}}}, {"content", " "}},
                                 {{"type", "ByteFallback"}},
                                 {{"type", "Fuse"}},
                                 {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}},
      {"model", {{"type", "BPE"}, {"byte_fallback", true}, {"vocab", vocab}, {"merges", {"▁ a", "▁ b"}}}}};
  return Tokenizer::from_json_text(j.dump(), "", "metaspace");
}

TEST(IncrementalDetokenizer, ContextDependentDecoder) {
  Tokenizer tok = metaspace_tokenizer();
  std::vector<int32_t> ids = tok.encode("a b", false);
  ASSERT_EQ(ids, (std::vector<int32_t>{3, 4}));
  EXPECT_EQ(tok.decode(ids, false), "a b");
  EXPECT_EQ(stream(tok, ids, false).pieces, (std::vector<std::string>{"a", " b", ""}));
  // With the prompt's last id as context, the first generated token keeps its leading space.
  EXPECT_EQ(stream(tok, {4}, false, {}, {3}).text, " b");
  // Byte-fallback bytes of one character come out together.
  std::vector<int32_t> zhong = tok.encode("中", false);
  ASSERT_EQ(zhong, (std::vector<int32_t>{0, 5, 6, 7}));
  EXPECT_EQ(stream(tok, zhong, false).pieces, (std::vector<std::string>{"", "", "", "中", ""}));
}

}  // namespace
}  // namespace dsi
