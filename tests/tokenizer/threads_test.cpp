// One Tokenizer shared by several threads (as the HTTP server shares it): every call gives
// what it gives alone.
#include <gtest/gtest.h>

#include <thread>

#include "core/json.h"
#include "core/mapped_file.h"
#include "test_paths.h"
#include "tokenizer/tokenizer.h"

namespace dsi {
namespace {

TEST(TokenizerThreads, ConcurrentCallsMatchSerialResults) {
  Tokenizer tok = Tokenizer::from_dir(test::v3_tokenizer_dir());
  Json cases = parse_json(read_text_file(test::tokenizer_data_dir() + "/cases.json"), "cases.json");
  std::vector<std::string> texts;
  for (const Json& c : cases["encode"]) texts.push_back(c["text"]);
  std::vector<std::vector<int32_t>> expected;
  for (const std::string& t : texts) expected.push_back(tok.encode(t, false));
  const Json& chat = cases["chat"];
  std::vector<std::string> expected_chat;
  for (const Json& c : chat) expected_chat.push_back(tok.apply_chat_template(c["messages"], true, Json(), Json()));

  constexpr int n_threads = 4;
  std::vector<int> n_mismatches(n_threads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < n_threads; ++t) {
    threads.emplace_back([&, t] {
      Tokenizer mine = tok;  // copies share the loaded data
      for (int round = 0; round < 3; ++round) {
        for (size_t i = size_t(t); i < texts.size(); i += 1) {
          std::vector<int32_t> ids = mine.encode(texts[i], false);
          if (ids != expected[i] || mine.decode(ids, false) != tok.decode(expected[i], false)) ++n_mismatches[size_t(t)];
        }
        for (size_t i = 0; i < chat.size(); ++i)
          if (mine.apply_chat_template(chat[i]["messages"], true, Json(), Json()) != expected_chat[i])
            ++n_mismatches[size_t(t)];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < n_threads; ++t) EXPECT_EQ(n_mismatches[size_t(t)], 0) << "thread " << t;
}

}  // namespace
}  // namespace dsi
