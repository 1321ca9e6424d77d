// Loading a Tokenizer from tokenizer.json, tokenizer_config.json and a chat template.
#include <filesystem>
#include <unordered_set>

#include "core/error.h"
#include "core/log.h"
#include "core/mapped_file.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/tokenizer_impl.h"

extern "C" const unsigned char dsi_deepseek_v3_tokenizer_json[];
extern "C" const unsigned char dsi_deepseek_v3_tokenizer_json_end[];
extern "C" const unsigned char dsi_deepseek_v3_tokenizer_config[];
extern "C" const unsigned char dsi_deepseek_v3_tokenizer_config_end[];

namespace dsi {
namespace {

const Json& field(const Json& j, const char* key) {
  static const Json null_json;  // an immutable constant, shared by all loads
  auto it = j.find(key);
  return it == j.end() ? null_json : *it;
}

// A special token in tokenizer_config.json: "text", {"content": "text", ...} or null.
std::optional<std::string> config_token(const Json& config, const char* key, const std::string& what) {
  const Json& v = field(config, key);
  if (v.is_null()) return std::nullopt;
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && field(v, "content").is_string()) return v["content"].get<std::string>();
  fail("{}: '{}' must be a string or an object with a 'content' string", what, key);
}

std::optional<std::string> config_chat_template(const Json& config, const std::string& what) {
  const Json& v = field(config, "chat_template");
  if (v.is_null()) return std::nullopt;
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array()) {
    // [{"name": "default", "template": "..."}, {"name": "tool_use", ...}]
    std::string names;
    for (const Json& t : v) {
      std::string name = json_get<std::string>(t, "name", what + ": chat_template[]");
      if (name == "default") return json_get<std::string>(t, "template", what + ": chat_template[]");
      names += (names.empty() ? "" : ", ") + name;
    }
    fail("{}: chat_template has no 'default' entry (it has: {})", what, names);
  }
  fail("{}: 'chat_template' must be a string or a list of named templates", what);
}

void build_id_tables(Tokenizer::Impl& t) {
  int32_t n = t.model.n_ids();
  for (const AddedToken& a : t.added.tokens()) n = std::max(n, a.id + 1);
  t.n_ids = n;
  t.token_text.assign(size_t(n), std::string());
  t.known.assign(size_t(n), 0);
  t.special.assign(size_t(n), 0);
  for (int32_t id = 0; id < t.model.n_ids(); ++id) {
    if (const std::string* s = t.model.id_to_token(id)) {
      t.token_text[size_t(id)] = *s;
      t.known[size_t(id)] = 1;
    }
  }
  // Added tokens take precedence over the vocab for decoding. "Special" goes by the decoded
  // string, as in the reference: a vocab entry spelled like a special token is special too,
  // and a normalized special token whose normalized form differs is not.
  std::unordered_set<std::string> special_contents;
  for (const AddedToken& a : t.added.tokens()) {
    t.token_text[size_t(a.id)] = a.decoded_form;
    t.known[size_t(a.id)] = 1;
    if (a.special) special_contents.insert(a.content);
  }
  for (int32_t id = 0; id < n; ++id)
    if (t.known[size_t(id)] && special_contents.count(t.token_text[size_t(id)])) t.special[size_t(id)] = 1;
  if (t.decoder.is_byte_level()) {
    t.token_bytes.assign(size_t(n), std::string());
    for (int32_t id = 0; id < n; ++id) {
      if (!t.known[size_t(id)]) continue;
      const std::string& text = t.token_text[size_t(id)];
      if (!byte_level::append_decoded(t.token_bytes[size_t(id)], text)) t.token_bytes[size_t(id)] = text;
    }
  }
}

std::shared_ptr<Tokenizer::Impl> load(std::string_view tokenizer_json, const std::string& tokenizer_what,
                                      std::string_view config_json, const std::string& config_what,
                                      const std::optional<std::string>& template_source, const std::string& template_what,
                                      bool template_explicit) {
  auto t = std::make_shared<Tokenizer::Impl>();
  with_context(tokenizer_what, [&] {
    Json j = parse_json(tokenizer_json, "document");
    if (!j.is_object()) fail("expected a JSON object");
    for (const char* unsupported : {"truncation", "padding"})
      if (!field(j, unsupported).is_null()) fail("'{}' is not supported (set it to null)", unsupported);
    if (field(j, "model").is_null()) fail("missing field 'model'");
    t->normalizer = Normalizer::from_json(field(j, "normalizer"));
    t->pre_tokenizer = PreTokenizer::from_json(field(j, "pre_tokenizer"));
    t->model = BpeModel::from_json(field(j, "model"));
    t->added = AddedVocabulary::from_json(field(j, "added_tokens"), t->normalizer, "added_tokens");
    t->decoder = Decoder::from_json(field(j, "decoder"));
    t->wrap = post_processor_from_json(field(j, "post_processor"));
  });
  build_id_tables(*t);

  std::optional<std::string> source = template_source;
  std::vector<std::pair<std::string, std::string>> specials;
  if (!config_json.empty()) {
    Json config = parse_json(config_json, config_what);
    if (!config.is_object()) fail("{}: expected a JSON object", config_what);
    auto id_of = [&](const std::string& token, const char* key) {
      if (const AddedToken* a = t->added.find_content(token)) return a->id;
      if (auto id = t->model.token_to_id(token)) return *id;
      fail("{}: {} '{}' is not in the vocabulary", config_what, key, token);
    };
    for (const char* key : {"bos_token", "eos_token", "unk_token", "pad_token"}) {
      if (auto token = config_token(config, key, config_what)) {
        specials.emplace_back(key, *token);
        int32_t id = id_of(*token, key);
        if (std::string_view(key) == "bos_token") t->bos_id = id;
        if (std::string_view(key) == "eos_token") t->eos_id = id;
      }
    }
    // add_bos_token / add_eos_token, when the config states them, decide what
    // add_special_tokens adds (what transformers' Llama-style tokenizers do).
    auto add_bos = json_get_opt<bool>(config, "add_bos_token", config_what);
    auto add_eos = json_get_opt<bool>(config, "add_eos_token", config_what);
    if (add_bos || add_eos) {
      t->wrap = {};
      if (add_bos.value_or(false)) {
        if (!t->bos_id) fail("{}: add_bos_token is true but there is no bos_token", config_what);
        t->wrap.prefix.push_back(*t->bos_id);
      }
      if (add_eos.value_or(false)) {
        if (!t->eos_id) fail("{}: add_eos_token is true but there is no eos_token", config_what);
        t->wrap.suffix.push_back(*t->eos_id);
      }
    }
    if (!source) source = config_chat_template(config, config_what);
  }
  if (source) {
    std::string what = template_what.empty() ? "chat template of " + config_what : template_what;
    try {
      t->chat_template = std::make_unique<const ChatTemplate>(*source, what, std::move(specials));
    } catch (const Error& e) {
      // A template the user named must work; one that merely comes with the model should not
      // stop plain encoding and decoding: its error is kept for apply_chat_template.
      if (template_explicit) throw;
      t->chat_template_error = e.what();
      spdlog::warn("{} (apply_chat_template will fail)", e.what());
    }
  }
  return t;
}

bool file_exists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_regular_file(path, ec);
}

}  // namespace

Tokenizer Tokenizer::from_json_text(std::string_view tokenizer_json, std::string_view config_json,
                                    const std::string& what, const std::string& chat_template_source) {
  std::optional<std::string> source;
  if (!chat_template_source.empty()) source = chat_template_source;
  return Tokenizer(load(tokenizer_json, what + " tokenizer.json", config_json, what + " tokenizer_config.json",
                        source, source ? what + " chat template" : "", source.has_value()));
}

Tokenizer Tokenizer::from_dir(const std::string& dir, const std::string& chat_template_file) {
  std::string tokenizer_path = dir + "/tokenizer.json";
  std::string config_path = dir + "/tokenizer_config.json";
  if (!file_exists(tokenizer_path)) fail("tokenizer directory {}: no tokenizer.json", dir);
  MappedFile tokenizer_file(tokenizer_path);
  auto bytes = tokenizer_file.bytes();
  std::string config = file_exists(config_path) ? read_text_file(config_path) : std::string();
  std::optional<std::string> source;
  std::string template_what;
  std::string template_path = chat_template_file.empty() ? dir + "/chat_template.jinja" : chat_template_file;
  if (!chat_template_file.empty() || file_exists(template_path)) {
    source = read_text_file(template_path);
    template_what = "chat template " + template_path;
  }
  return Tokenizer(load(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), tokenizer_path,
                        config, config_path, source, template_what, !chat_template_file.empty()));
}

Tokenizer Tokenizer::embedded_default(const std::string& chat_template_file) {
  auto view = [](const unsigned char* begin, const unsigned char* end) {
    return std::string_view(reinterpret_cast<const char*>(begin), size_t(end - begin));
  };
  std::optional<std::string> source;
  if (!chat_template_file.empty()) source = read_text_file(chat_template_file);
  return Tokenizer(load(view(dsi_deepseek_v3_tokenizer_json, dsi_deepseek_v3_tokenizer_json_end),
                        "embedded DeepSeek-V3 tokenizer.json",
                        view(dsi_deepseek_v3_tokenizer_config, dsi_deepseek_v3_tokenizer_config_end),
                        "embedded DeepSeek-V3 tokenizer_config.json", source,
                        source ? "chat template " + chat_template_file : "", source.has_value()));
}

}  // namespace dsi
