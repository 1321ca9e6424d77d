#include "tokenizer/commands.h"

#include <iostream>
#include <memory>
#include <string>

#include "core/error.h"
#include "tokenizer/incremental_detokenizer.h"
#include "tokenizer/tokenizer.h"

namespace dsi {
namespace {

using OrderedJson = nlohmann::ordered_json;

struct TokenizerOptions {
  std::string dir;
  std::string chat_template;
};

void add_tokenizer_options(CLI::App* cmd, TokenizerOptions& opt) {
  cmd->add_option("--tokenizer", opt.dir,
                  "directory with tokenizer.json and tokenizer_config.json (default: the embedded DeepSeek-V3 one)");
  cmd->add_option("--chat-template", opt.chat_template, "Jinja chat template file overriding the tokenizer's");
}

Tokenizer load_tokenizer(const TokenizerOptions& opt) {
  return opt.dir.empty() ? Tokenizer::embedded_default(opt.chat_template)
                         : Tokenizer::from_dir(opt.dir, opt.chat_template);
}

const OrderedJson& member(const OrderedJson& obj, const char* key) {
  static const OrderedJson null_json;  // immutable constant
  auto it = obj.find(key);
  return it == obj.end() ? null_json : *it;
}

bool optional_bool(const OrderedJson& obj, const char* key, bool fallback) {
  const OrderedJson& v = member(obj, key);
  if (v.is_null()) return fallback;
  if (!v.is_boolean()) fail("field '{}' must be a boolean", key);
  return v.get<bool>();
}

OrderedJson parse_line(const std::string& line) {
  if (line.find_first_not_of(" \t\r") == std::string::npos) fail("empty input line");
  OrderedJson j;
  try {
    j = parse_json_bounded<OrderedJson>(line);  // nesting bounded: a line is walked recursively below
  } catch (const JsonParseError& e) {
    fail("malformed JSON: {}", e.what());
  }
  if (!j.is_object()) fail("expected a JSON object");
  return j;
}

OrderedJson tokenize_one(const Tokenizer& tok, const OrderedJson& in) {
  OrderedJson out;
  if (in.contains("text")) {
    const OrderedJson& text = in["text"];
    if (!text.is_string()) fail("field 'text' must be a string");
    out["ids"] = tok.encode(text.get_ref<const std::string&>(), optional_bool(in, "add_special_tokens", false));
    return out;
  }
  if (in.contains("messages")) {
    const OrderedJson& extra = member(in, "chat_template_kwargs");
    if (!extra.is_null() && !extra.is_object()) fail("field 'chat_template_kwargs' must be an object");
    std::string rendered = tok.apply_chat_template(in["messages"], optional_bool(in, "add_generation_prompt", false),
                                                   member(in, "tools"), extra);
    out["ids"] = tok.encode(rendered, optional_bool(in, "add_special_tokens", false));
    out["text"] = rendered;
    return out;
  }
  fail("expected a 'text' or a 'messages' field");
}

OrderedJson detokenize_one(const Tokenizer& tok, const OrderedJson& in) {
  const OrderedJson& ids_json = member(in, "ids");
  if (!ids_json.is_array()) fail("expected an 'ids' array");
  std::vector<int32_t> ids;
  ids.reserve(ids_json.size());
  for (const OrderedJson& v : ids_json) {
    if (!v.is_number_integer()) fail("ids must be integers, got {}", clip_text(v.dump()));
    // Ids outside the int32 range are unknown to any tokenizer: they decode to nothing.
    int64_t id = v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX) ? -1 : v.get<int64_t>();
    ids.push_back(id < 0 || id > INT32_MAX ? -1 : int32_t(id));
  }
  bool skip = optional_bool(in, "skip_special_tokens", false);
  OrderedJson out;
  out["text"] = tok.decode(ids, skip);
  if (optional_bool(in, "stream", false)) {
    // What a streaming client receives, token by token, with optional stop strings.
    std::vector<std::string> stops;
    const OrderedJson& stop_json = member(in, "stop");
    if (!stop_json.is_null()) {
      if (!stop_json.is_array()) fail("field 'stop' must be an array of strings");
      for (const OrderedJson& s : stop_json) {
        if (!s.is_string()) fail("field 'stop' must be an array of strings");
        stops.push_back(s.get<std::string>());
      }
    }
    IncrementalDetokenizer stream(tok, skip, stops);
    OrderedJson pieces = OrderedJson::array();
    DetokenizedText last;
    for (int32_t id : ids) {
      last = stream.push(id);
      pieces.push_back(last.text);
      if (last.stopped) break;
    }
    if (!last.stopped) {
      last = stream.finish();
      pieces.push_back(last.text);
    }
    out["pieces"] = pieces;
    out["stop_index"] = last.stopped ? OrderedJson(last.stop_index) : OrderedJson(nullptr);
  }
  return out;
}

// Reads JSON lines from stdin; each gets one output line, an {"error": ...} object for a bad one.
template <class Fn>
void run_lines(Fn&& handle) {
  std::string line;
  size_t line_number = 0;
  while (std::getline(std::cin, line)) {
    ++line_number;
    OrderedJson out;
    try {
      out = handle(parse_line(line));
    } catch (const Error& e) {
      out = OrderedJson{{"error", fmt::format("line {}: {}", line_number, e.what())}};
    }
    std::cout << out.dump(-1, ' ', false, OrderedJson::error_handler_t::replace) << '\n' << std::flush;
  }
}

}  // namespace

void register_tokenizer_commands(CLI::App& app) {
  auto tokenize_opt = std::make_shared<TokenizerOptions>();
  CLI::App* tokenize = app.add_subcommand(
      "tokenize",
      "text or chat messages to ids: reads JSON lines {\"text\": ...} or {\"messages\": [...], "
      "\"add_generation_prompt\": true} from stdin, writes {\"ids\": [...]} (plus \"text\" for messages)");
  add_tokenizer_options(tokenize, *tokenize_opt);
  tokenize->callback([tokenize_opt] {
    Tokenizer tok = load_tokenizer(*tokenize_opt);
    run_lines([&](const OrderedJson& in) { return tokenize_one(tok, in); });
  });

  auto detokenize_opt = std::make_shared<TokenizerOptions>();
  CLI::App* detokenize = app.add_subcommand(
      "detokenize",
      "ids to text: reads JSON lines {\"ids\": [...], \"skip_special_tokens\": false} from stdin, "
      "writes {\"text\": ...}");
  add_tokenizer_options(detokenize, *detokenize_opt);
  detokenize->callback([detokenize_opt] {
    Tokenizer tok = load_tokenizer(*detokenize_opt);
    run_lines([&](const OrderedJson& in) { return detokenize_one(tok, in); });
  });
}

}  // namespace dsi
