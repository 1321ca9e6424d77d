#pragma once
// What a client asks of the engine and what it gets back, in token ids. Text (chat templates,
// detokenization, stop strings) is the server's business; the engine sees ids only.
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <memory>

#include "engine/token_constraint.h"
#include <vector>

namespace dsi {

using RequestId = uint64_t;

// The largest repetition_penalty accepted (the API and the sampler check against this one).
constexpr double kMaxRepetitionPenalty = 10;

// OpenAI / vLLM sampling parameters (their names and meanings).
struct SamplingParams {
  double temperature = 1.0;         // 0: greedy (argmax, first index on ties)
  double top_p = 1.0;               // (0, 1]
  int top_k = 0;                    // 0 or -1: off
  double min_p = 0.0;               // [0, 1]
  double presence_penalty = 0.0;    // [-2, 2], on generated tokens
  double frequency_penalty = 0.0;   // [-2, 2], on generated tokens
  double repetition_penalty = 1.0;  // (0, kMaxRepetitionPenalty], on prompt and generated tokens
  std::optional<uint64_t> seed{};   // reproducible sampling; otherwise seeded at random
  int max_tokens = 16;              // >= 1
  int min_tokens = 0;               // EOS and stop tokens are masked before this many tokens
  bool ignore_eos = false;
  std::vector<int32_t> stop_token_ids{};
  int logprobs = -1;  // -1: none; 0: the chosen token's; N: and the N most likely (<= 20)
  // Token rules (sampler.h, step 2): logit_bias (token, bias in [-100, 100]) sorted by token,
  // one entry each; allowed_token_ids (sorted, unique; empty: all allowed); bad_words_ids:
  // token sequences the output never completes (the last token is masked when the output ends
  // with the others).
  std::vector<std::pair<int32_t, float>> logit_bias{};
  std::vector<int32_t> allowed_token_ids{};
  std::vector<std::vector<int32_t>> bad_words_ids{};
  // Structured outputs: only the tokens it allows (and EOS where it may end) can come.
  std::shared_ptr<const TokenConstraint> constraint{};
};

struct TokenLogprob {
  int32_t token;
  float logprob;
};

struct GeneratedToken {
  int32_t token;
  float logprob = 0;              // of the chosen token under the model (raw log-softmax)
  std::vector<TokenLogprob> top;  // the sampling.logprobs most likely, best first
};

enum class FinishReason {
  finish_none,    // still running
  finish_stop,    // EOS, a stop token, or the server's stop string (via Engine::finish)
  finish_length,  // max_tokens or the context length reached
  finish_abort,   // cancelled (client gone, server shutting down)
  finish_error,   // the request failed; `error` says why
};
const char* finish_reason_name(FinishReason r);  // "stop", "length", "abort", "error", or null

// One event of a request, delivered in order. The last one has finish != finish_none.
struct RequestOutput {
  RequestId id = 0;
  std::vector<GeneratedToken> tokens;  // new tokens since the previous event
  FinishReason finish = FinishReason::finish_none;
  std::optional<int32_t> stop_token;  // the EOS or stop token that ended it (included in tokens)
  std::string error;
  bool server_unavailable = false;  // the error is the server's (a rank of the group failed): HTTP 503
  int n_prompt_tokens = 0;
  int n_cached_prompt_tokens = 0;  // prompt tokens served from the prefix cache
  int n_generated = 0;             // tokens generated so far, these included
  // When the request first entered a batch (unset: never scheduled), for its queue time.
  std::optional<std::chrono::steady_clock::time_point> first_scheduled;
};

// Called on the engine's thread for every event of the request; it must return quickly and
// never call back into the engine synchronously except Engine::finish/abort (which only
// queue). The server posts the event to the connection's I/O thread.
using OutputCallback = std::function<void(RequestOutput&&)>;

// The order the scheduler serves requests in (vLLM's --scheduling-policy; scheduler.h).
enum class SchedulingPolicy { scheduling_fcfs, scheduling_priority };

struct EngineRequest {
  std::vector<int32_t> prompt;
  SamplingParams sampling;
  OutputCallback on_output;
  std::chrono::steady_clock::time_point arrival = std::chrono::steady_clock::now();
  // vLLM's priority: under the priority policy lower values are served first (and preempted
  // last); ignored under first-come first-served.
  int64_t priority = 0;
  // vLLM's cache_salt: prefix-cache blocks are shared only among requests of equal salts.
  std::string cache_salt;
};

}  // namespace dsi
