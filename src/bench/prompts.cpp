#include "bench/prompts.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <random>

#include "core/error.h"

namespace dsi::bench {

namespace {

// Common English words that byte-level BPE vocabularies (GPT, Llama, DeepSeek, Qwen) hold as
// one token with their leading space, so a text of n of them is about n tokens anywhere.
constexpr const char* kWords[] = {
    "the",   "of",     "and",   "to",    "in",    "is",    "was",   "for",   "that",  "with",  "as",    "on",
    "by",    "at",     "from",  "his",   "an",    "were",  "are",   "which", "this",  "be",    "or",    "has",
    "had",   "first",  "one",   "their", "its",   "new",   "after", "but",   "who",   "not",   "they",  "have",
    "her",   "she",    "two",   "been",  "other", "when",  "there", "all",   "during", "into", "school", "time",
    "may",   "years",  "more",  "most",  "only",  "over",  "city",  "some",  "world", "would", "where", "later",
    "up",    "such",   "used",  "many",  "can",   "state", "about", "national", "out", "known", "university",
    "united", "then",  "made",  "season", "three", "both", "these", "between", "under", "him",  "team",  "well",
    "music", "film",   "people", "year", "part",  "war",   "second", "game", "life",  "house", "water", "light",
    "river", "small",  "large", "early", "high",  "family", "name",  "group", "work",  "long",  "land",  "south"};
constexpr size_t kNumWords = sizeof(kWords) / sizeof(kWords[0]);

int jittered(int len, double ratio, std::mt19937_64& rng) {
  if (ratio <= 0) return len;
  int lo = std::max(1, int(std::floor(len * (1 - ratio)))), hi = std::max(lo, int(std::ceil(len * (1 + ratio))));
  return std::uniform_int_distribution<int>(lo, hi)(rng);
}

bool use_ids(const BenchOptions& o) {
  if (o.prompt_format == "ids") {
    if (o.endpoint == Endpoint::endpoint_chat) fail("--prompt-format ids needs --endpoint completions");
    return true;
  }
  if (o.prompt_format == "text") return false;
  return o.endpoint == Endpoint::endpoint_completions;
}

// n random token ids, or n random words, from rng.
Json random_ids(const BenchOptions& o, int n, std::mt19937_64& rng) {
  std::uniform_int_distribution<int64_t> token(o.vocab_low, o.vocab_high - 1);
  Json list = Json::array();
  for (int t = 0; t < n; ++t) list.push_back(token(rng));
  return list;
}
std::string random_text(int n, std::mt19937_64& rng) {
  std::uniform_int_distribution<size_t> word(0, kNumWords - 1);
  std::string text;
  for (int t = 0; t < n; ++t) {
    if (t) text += ' ';
    text += kWords[word(rng)];
  }
  return text;
}
Json as_prompt(const BenchOptions& o, const std::string& text) {
  return o.endpoint == Endpoint::endpoint_chat ? Json::array({{{"role", "user"}, {"content", text}}}) : Json(text);
}

void check_token_range(const BenchOptions& o) {
  if (o.vocab_low < 0 || o.vocab_high <= o.vocab_low) fail("--random-token-range must be LOW,HIGH with 0 <= LOW < HIGH");
}

// vLLM's prefix-repetition dataset: num_prefixes random prefixes, each prompt one of them (in
// turn) followed by a random suffix, in shuffled order: a prefix cache's best case at a known
// hit rate of prefix_len / (prefix_len + suffix_len) once every prefix was seen.
std::vector<BenchPrompt> prefix_repetition_prompts(const BenchOptions& o) {
  if (o.prefix_len < 1) fail("--prefix-repetition-prefix-len must be at least 1, got {}", o.prefix_len);
  if (o.suffix_len < 1) fail("--prefix-repetition-suffix-len must be at least 1, got {}", o.suffix_len);
  if (o.num_prefixes < 1) fail("--prefix-repetition-num-prefixes must be at least 1, got {}", o.num_prefixes);
  if (o.prefix_output_len < 1) fail("--prefix-repetition-output-len must be at least 1, got {}", o.prefix_output_len);
  check_token_range(o);
  std::mt19937_64 rng(o.seed);
  const bool ids = use_ids(o);
  std::vector<Json> prefixes;
  for (int k = 0; k < o.num_prefixes; ++k)
    prefixes.push_back(ids ? random_ids(o, o.prefix_len, rng) : Json(random_text(o.prefix_len, rng)));
  std::vector<BenchPrompt> out;
  for (int i = 0; i < o.num_prompts; ++i) {
    BenchPrompt p;
    p.max_tokens = o.prefix_output_len;
    p.expected_input_len = o.prefix_len + o.suffix_len;
    const Json& prefix = prefixes[size_t(i % o.num_prefixes)];
    if (ids) {
      p.prompt = prefix;
      for (const Json& t : random_ids(o, o.suffix_len, rng)) p.prompt.push_back(t);
    } else {
      p.prompt = as_prompt(o, prefix.get<std::string>() + " " + random_text(o.suffix_len, rng));
    }
    out.push_back(std::move(p));
  }
  std::shuffle(out.begin(), out.end(), rng);
  return out;
}

std::vector<BenchPrompt> random_prompts(const BenchOptions& o) {
  if (o.input_len < 1) fail("--input-len must be at least 1, got {}", o.input_len);
  if (o.output_len < 1) fail("--output-len must be at least 1, got {}", o.output_len);
  if (o.range_ratio < 0 || o.range_ratio >= 1) fail("--random-range-ratio must be in [0, 1), got {}", o.range_ratio);
  check_token_range(o);
  std::mt19937_64 rng(o.seed);
  const bool ids = use_ids(o);
  std::vector<BenchPrompt> out;
  for (int i = 0; i < o.num_prompts; ++i) {
    BenchPrompt p;
    int n_in = jittered(o.input_len, o.range_ratio, rng);
    p.max_tokens = jittered(o.output_len, o.range_ratio, rng);
    p.expected_input_len = n_in;
    p.prompt = ids ? random_ids(o, n_in, rng) : as_prompt(o, random_text(n_in, rng));
    out.push_back(std::move(p));
  }
  return out;
}

std::vector<BenchPrompt> file_prompts(const BenchOptions& o) {
  std::ifstream in(o.prompts_file);
  if (!in) fail("--prompts-file {}: cannot open", o.prompts_file);
  std::vector<BenchPrompt> read;
  std::string line;
  for (int line_no = 1; std::getline(in, line); ++line_no) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::string what = fmt::format("{} line {}", o.prompts_file, line_no);
    Json j = parse_json(line, what);
    if (!j.is_object()) fail("{}: expected a JSON object", what);
    BenchPrompt p;
    p.max_tokens = json_get_opt<int>(j, "max_tokens", what).value_or(o.output_len);
    if (p.max_tokens < 1) fail("{}: max_tokens must be at least 1", what);
    if (o.endpoint == Endpoint::endpoint_chat) {
      if (j.contains("messages")) p.prompt = j["messages"];
      else if (j.contains("prompt") && j["prompt"].is_string())
        p.prompt = Json::array({{{"role", "user"}, {"content", j["prompt"]}}});
      else fail("{}: a chat prompt needs 'messages' or a string 'prompt'", what);
      if (!p.prompt.is_array() || p.prompt.empty()) fail("{}: 'messages' must be a non-empty array", what);
    } else {
      if (!j.contains("prompt") || !(j["prompt"].is_string() || j["prompt"].is_array()))
        fail("{}: needs 'prompt' (a string or an array of token ids)", what);
      p.prompt = j["prompt"];
    }
    read.push_back(std::move(p));
  }
  if (read.empty()) fail("--prompts-file {}: no prompts", o.prompts_file);
  std::vector<BenchPrompt> out;
  for (int i = 0; i < o.num_prompts; ++i) out.push_back(read[size_t(i) % read.size()]);
  return out;
}

}  // namespace

std::vector<BenchPrompt> make_prompts(const BenchOptions& opts) {
  if (opts.num_prompts < 1) fail("--num-prompts must be at least 1, got {}", opts.num_prompts);
  if (!opts.prompts_file.empty()) {
    if (opts.dataset_name != "random") fail("--prompts-file and --dataset-name {}: give one of them", opts.dataset_name);
    return file_prompts(opts);
  }
  if (opts.dataset_name == "random") return random_prompts(opts);
  if (opts.dataset_name == "prefix-repetition") return prefix_repetition_prompts(opts);
  if (opts.dataset_name == "sharegpt") return sharegpt_prompts(opts);
  fail("--dataset-name {}: expected random, sharegpt or prefix-repetition", opts.dataset_name);
}

std::string request_body(const BenchOptions& opts, const std::string& model, const BenchPrompt& p) {
  Json body = {{"model", model},
               {"max_tokens", p.max_tokens},
               {"temperature", opts.temperature},
               {"stream", true},
               {"stream_options", {{"include_usage", true}}}};
  if (opts.ignore_eos) body["ignore_eos"] = true;  // vLLM / SGLang / dsinfer extension
  if (opts.endpoint == Endpoint::endpoint_chat) body["messages"] = p.prompt;
  else body["prompt"] = p.prompt;
  return body.dump();
}

}  // namespace dsi::bench
