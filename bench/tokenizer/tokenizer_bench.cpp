// Single-thread encode throughput of the tokenizer on a corpus of documents (JSON lines
// {"text": ...}, as run_bench.py builds it). Prints MB/s per pass and the median; with
// --ids-out writes each document's ids (one JSON array per line) for comparison with the
// reference library.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/json.h"
#include "core/log.h"
#include "tokenizer/tokenizer.h"

int main(int argc, char** argv) {
  CLI::App app{"encode throughput of the dsinfer tokenizer"};
  std::string corpus_path, tokenizer_dir, ids_out;
  int n_passes = 5;
  app.add_option("--corpus", corpus_path, "JSON lines with a 'text' field")->required();
  app.add_option("--tokenizer", tokenizer_dir, "tokenizer directory (default: the embedded DeepSeek-V3 one)");
  app.add_option("--passes", n_passes, "timed passes over the corpus")->capture_default_str();
  app.add_option("--ids-out", ids_out, "write the ids of each document here");
  CLI11_PARSE(app, argc, argv);
  try {
    dsi::init_logging("warn");  // logs to stderr; stdout carries the figures
    dsi::Tokenizer tok = tokenizer_dir.empty() ? dsi::Tokenizer::embedded_default() : dsi::Tokenizer::from_dir(tokenizer_dir);
    std::vector<std::string> docs;
    std::ifstream in(corpus_path);
    if (!in) dsi::fail("cannot open {}", corpus_path);
    std::string line;
    size_t n_bytes = 0;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      docs.push_back(dsi::json_get<std::string>(dsi::parse_json(line, corpus_path), "text", corpus_path));
      n_bytes += docs.back().size();
    }
    std::vector<double> mb_per_s;
    size_t n_tokens = 0;
    for (int pass = 0; pass < n_passes; ++pass) {
      n_tokens = 0;
      auto start = std::chrono::steady_clock::now();
      for (const std::string& d : docs) n_tokens += tok.encode(d, false).size();
      double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      mb_per_s.push_back(double(n_bytes) / 1e6 / seconds);
      std::printf("pass %d: %.2f MB/s\n", pass + 1, mb_per_s.back());
    }
    std::vector<double> sorted = mb_per_s;
    std::sort(sorted.begin(), sorted.end());
    double median = sorted[sorted.size() / 2];
    std::printf("documents %zu, bytes %zu, tokens %zu\n", docs.size(), n_bytes, n_tokens);
    std::printf("{\"encode_mb_per_s\": %.3f, \"bytes\": %zu, \"tokens\": %zu}\n", median, n_bytes, n_tokens);
    if (!ids_out.empty()) {
      std::ofstream out(ids_out);
      for (const std::string& d : docs) out << dsi::Json(tok.encode(d, false)).dump() << '\n';
    }
  } catch (const dsi::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
