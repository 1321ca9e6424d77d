#include <fstream>
#include <sstream>

#include "bench/prompts.h"
#include "core/error.h"

namespace dsi::bench {

namespace {

// Without the model's tokenizer the bench estimates a text's tokens the way OpenAI's guidance
// does for English: about 4 characters each. It only sets max_tokens (ignore_eos makes the
// server generate exactly that many) and the length filter.
int64_t estimated_tokens(const std::string& text) { return std::max<int64_t>(1, int64_t(text.size() + 3) / 4); }

}  // namespace

std::vector<BenchPrompt> sharegpt_prompts(const BenchOptions& o) {
  if (o.dataset_path.empty()) fail("--dataset-name sharegpt needs --dataset-path FILE (ShareGPT JSON)");
  if (o.prompt_format == "ids") fail("--dataset-name sharegpt sends text: --prompt-format ids does not apply");
  std::ifstream in(o.dataset_path);
  if (!in) fail("--dataset-path {}: cannot open", o.dataset_path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  Json j = parse_json(buffer.str(), o.dataset_path);
  if (!j.is_array()) fail("{}: expected a JSON array of conversations (ShareGPT format)", o.dataset_path);
  std::vector<BenchPrompt> read;
  for (size_t i = 0; i < j.size(); ++i) {
    const Json& entry = j[i];
    const std::string what = fmt::format("{} entry {}", o.dataset_path, i);
    if (!entry.is_object() || !entry.contains("conversations") || !entry["conversations"].is_array())
      fail("{}: expected an object with a 'conversations' array", what);
    const Json& turns = entry["conversations"];
    if (turns.size() < 2) continue;
    std::string texts[2];
    for (int t = 0; t < 2; ++t) {
      if (!turns[size_t(t)].is_object() || !turns[size_t(t)].contains("value") || !turns[size_t(t)]["value"].is_string())
        fail("{}: conversation turn {} needs a string 'value'", what, t);
      texts[t] = turns[size_t(t)]["value"].get<std::string>();
    }
    const int64_t n_prompt = estimated_tokens(texts[0]), n_answer = estimated_tokens(texts[1]);
    if (n_prompt < 4 || (o.sharegpt_output_len <= 0 && n_answer < 4)) continue;
    BenchPrompt p;
    p.max_tokens = o.sharegpt_output_len > 0 ? o.sharegpt_output_len : int(n_answer);
    p.expected_input_len = n_prompt;
    p.prompt = o.endpoint == Endpoint::endpoint_chat ? Json::array({{{"role", "user"}, {"content", texts[0]}}})
                                                     : Json(texts[0]);
    read.push_back(std::move(p));
  }
  if (read.empty()) fail("--dataset-path {}: no conversation with a prompt and an answer", o.dataset_path);
  std::vector<BenchPrompt> out;
  for (int i = 0; i < o.num_prompts; ++i) out.push_back(read[size_t(i) % read.size()]);
  return out;
}

}  // namespace dsi::bench
