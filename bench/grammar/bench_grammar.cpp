// Structured-output mask time per token on the DeepSeek-V3 vocabulary (129,280 ids, the
// embedded tokenizer), for a nested JSON schema (regex DFA) and for a recursive EBNF grammar of
// JSON (guided_grammar, the Earley matcher), beside sample_token's time for the same
// vocabulary: the share a grammar adds to one sequence's sampling, and to a decode step of a
// batch. It walks one document of the schema token by token (the tokenizer's own encoding of
// it) several times: the first pass builds DFA states and their masks (cold), later passes
// find them cached (warm). Each token's cost is what the sampler pays: the constraint's
// next() (replay of the output through the DFA + the cached mask) and the mask applied to
// a row of logits (masked_tokens in sampler.cpp).
//
//   bench_grammar [--passes 5] [--step-ms MS]   (--step-ms: a decode step's time, for the share)
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "engine/sampler.h"
#include "grammar/cfg_constraint.h"
#include "grammar/constraint.h"
#include "server/structured_output.h"
#include "tokenizer/tokenizer.h"

int main(int argc, char** argv) {
  using namespace dsi;
  using Clock = std::chrono::steady_clock;
  int passes = 5;
  double step_ms = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--passes" && i + 1 < argc) passes = std::stoi(argv[++i]);
    else if (a == "--step-ms" && i + 1 < argc) step_ms = std::stod(argv[++i]);
    else {
      std::fprintf(stderr, "usage: bench_grammar [--passes N] [--step-ms MS]\n");
      return 2;
    }
  }
  const int64_t vocab = 129280;
  const Tokenizer tok = Tokenizer::embedded_default();
  auto t0 = Clock::now();
  auto trie = std::make_shared<const grammar::TokenTrie>(server::vocabulary_bytes(tok, vocab));
  const double trie_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  const Json schema = Json::parse(R"({
    "type": "object", "required": ["id", "user", "items"],
    "properties": {
      "id": {"type": "integer"},
      "user": {"type": "object", "required": ["name", "email"], "properties": {
        "name": {"type": "string", "maxLength": 40}, "email": {"type": "string", "format": "email"},
        "roles": {"type": "array", "items": {"enum": ["admin", "dev", "ops"]}, "maxItems": 3}}},
      "items": {"type": "array", "minItems": 1, "items": {"type": "object", "required": ["sku", "qty"],
        "properties": {"sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"}, "qty": {"type": "integer",
        "minimum": 1, "maximum": 99}, "note": {"anyOf": [{"type": "null"}, {"type": "string"}]}}}},
      "active": {"type": "boolean"}}})");
  const std::string doc =
      R"({"active":true,"id":12345,"items":[{"note":"leave at the door, please","qty":2,"sku":"ABC-1234"},)"
      R"({"note":null,"qty":17,"sku":"XYZ-0042"}],"user":{"email":"ada@example.com","name":"Ada Lovelace",)"
      R"("roles":["admin","dev"]}})";
  const std::vector<int32_t> ids = tok.encode(doc, false);
  grammar::GrammarCache cache(trie);
  t0 = Clock::now();
  auto c = cache.get(grammar::SpecKind::json_schema, schema);
  const double compile_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();

  SamplingParams p;
  p.constraint = c;
  p.temperature = 1.0;
  p.seed = 1;
  const std::vector<int64_t> eos = {1};
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0, 2);
  std::vector<float> logits(static_cast<size_t>(vocab));
  for (float& v : logits) v = normal(rng);
  // Mask time per token along the document, `passes` times: the first pass builds what the
  // constraint caches, later ones find it.
  auto time_masks = [&](const char* what, const SamplingParams& sp, auto describe, const std::vector<int32_t>& doc_ids,
                        int n_passes) {
    for (int pass = 0; pass < n_passes; ++pass) {
      double mask_s = 0, worst_s = 0;
      for (size_t k = 0; k < doc_ids.size(); ++k) {
        auto a = Clock::now();
        std::vector<int32_t> masked = masked_tokens(sp, {{}, int(k), eos, std::span(doc_ids).first(k)}, vocab);
        const double t = std::chrono::duration<double>(Clock::now() - a).count();
        mask_s += t;
        worst_s = std::max(worst_s, t);
        if (std::binary_search(masked.begin(), masked.end(), doc_ids[k])) {
          std::fprintf(stderr, "%s: the document's token %d at %zu is masked: the grammar and the document disagree\n",
                       what, doc_ids[k], k);
          std::exit(1);
        }
      }
      std::printf("%s pass %d (%s): %zu tokens, mask %.3f ms per token (worst %.3f ms)%s\n", what, pass + 1,
                  pass == 0 ? "cold: states and masks built" : "warm", doc_ids.size(), 1e3 * mask_s / double(doc_ids.size()),
                  1e3 * worst_s, describe().c_str());
    }
  };
  time_masks("json schema (regex DFA)", p, [&] {
    return ", " + std::to_string(dynamic_cast<const grammar::GrammarConstraint&>(*c).automaton().n_states()) +
           " DFA states";
  }, ids, passes);
  // The same document under a recursive EBNF grammar of all JSON (guided_grammar): an Earley
  // matcher, whose states are kept per output prefix. A new request's output is a new prefix,
  // so the cold pass is what every request pays per token; warm is a prefix seen before (n > 1
  // choices sharing a prefix, a retried request).
  const std::string json_ebnf = R"ebnf(
    root   ::= value
    value  ::= object | array | string | number | "true" | "false" | "null"
    object ::= "{" ws ( member ( ws "," ws member )* )? ws "}"
    member ::= string ws ":" ws value
    array  ::= "[" ws ( value ( ws "," ws value )* )? ws "]"
    string ::= "\"" ( [^"\\] | "\\" ["\\/bfnrt] | "\\u" [0-9a-fA-F]{4} )* "\""
    number ::= "-"? ( "0" | [1-9] [0-9]* ) ( "." [0-9]+ )? ( [eE] [-+]? [0-9]+ )?
    ws     ::= [ \t\n]*)ebnf";
  t0 = Clock::now();
  auto g = cache.get(grammar::SpecKind::grammar, json_ebnf);
  const double ebnf_compile_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  SamplingParams pg = p;
  pg.constraint = g;
  const auto& earley = dynamic_cast<const grammar::CfgConstraint&>(*g).earley();
  auto n_sets = [&] { return ", " + std::to_string(earley.n_sets()) + " Earley sets alive"; };
  time_masks("ebnf json (Earley)", pg, n_sets, ids, passes);
  // Another document of the grammar: a new request, whose prefixes are all new, meets the
  // sets the first one left (interned) where their configurations agree.
  const std::string doc2 =
      R"({"order":{"lines":[{"sku":"QRS-0007","qty":3,"note":"ring twice"},{"sku":"TUV-0100","qty":1}],)"
      R"("paid":false,"total":-12.5e3},"tags":["rush","gift",null],"customer":{"name":"Grace Hopper"}})";
  time_masks("ebnf json, another document", pg, n_sets, tok.encode(doc2, false), 1);
  std::printf("ebnf compile: %.2f ms\n", ebnf_compile_ms);

  // The sampler's own time per token on this vocabulary, unconstrained and constrained.
  auto time_sample = [&](const SamplingParams& sp) {
    SamplerState st(sp);
    const int n = int(ids.size());
    auto a = Clock::now();
    for (int k = 0; k < n; ++k) {
      std::vector<float> scratch = logits;
      SampleContext ctx{{}, k, eos, std::span(ids).first(size_t(k))};
      try {
        sample_token(scratch, sp, st, ctx);
      } catch (const std::exception&) {
      }
    }
    return 1e3 * std::chrono::duration<double>(Clock::now() - a).count() / n;
  };
  SamplingParams plain = p;
  plain.constraint = nullptr;
  const double plain_ms = time_sample(plain), constrained_ms = time_sample(p);
  std::printf("trie over %lld tokens: %.0f ms (once per server); schema compile: %.2f ms (cached after)\n",
              static_cast<long long>(vocab), trie_ms, compile_ms);
  std::printf("sample_token per token: %.3f ms unconstrained, %.3f ms with the grammar (+%.3f ms)\n", plain_ms,
              constrained_ms, constrained_ms - plain_ms);
  if (step_ms > 0)
    std::printf("share of a %.1f ms decode step (sampling rows in parallel, one thread each): %.1f%%\n", step_ms,
                100.0 * (constrained_ms - plain_ms) / step_ms);
  return 0;
}
