#include "tokenizer/chat_template.h"

#include "core/error.h"
#include "tokenizer/jinja_template.h"

namespace dsi {
namespace {

template <class J>
jinja::Value to_value(const J& j, int depth = 0) {
  if (depth > 256) fail("chat template input nested too deeply");
  switch (j.type()) {
    case J::value_t::null: return jinja::Value::none();
    case J::value_t::boolean: return jinja::Value(j.template get<bool>());
    case J::value_t::number_integer: return jinja::Value(j.template get<int64_t>());
    case J::value_t::number_unsigned: {
      auto u = j.template get<uint64_t>();
      return u > uint64_t(INT64_MAX) ? jinja::Value(double(u)) : jinja::Value(int64_t(u));
    }
    case J::value_t::number_float: return jinja::Value(j.template get<double>());
    case J::value_t::string: return jinja::Value(j.template get<std::string>());
    case J::value_t::array: {
      jinja::ValueList list;
      list.reserve(j.size());
      for (const auto& item : j) list.push_back(to_value(item, depth + 1));
      return jinja::Value(std::move(list));
    }
    case J::value_t::object: {
      jinja::ValueDict dict;
      for (auto it = j.begin(); it != j.end(); ++it) dict.set(it.key(), to_value(it.value(), depth + 1));
      return jinja::Value(std::move(dict));
    }
    default: fail("chat template input: unsupported JSON value of type binary");
  }
}

}  // namespace

ChatTemplate::ChatTemplate(std::string_view source, std::string what,
                           std::vector<std::pair<std::string, std::string>> special_tokens)
    : what_(std::move(what)), special_tokens_(std::move(special_tokens)) {
  template_ = with_context(what_, [&] { return std::make_unique<const jinja::Template>(source); });
}

ChatTemplate::~ChatTemplate() = default;

template <class J>
std::string ChatTemplate::render_any(const J& messages, bool add_generation_prompt, const J& tools,
                                     const J& extra_vars) const {
  if (!messages.is_array()) fail("chat template: 'messages' must be an array, got {}", messages.type_name());
  if (!tools.is_null() && !tools.is_array()) fail("chat template: 'tools' must be an array or null");
  if (!extra_vars.is_null() && !extra_vars.is_object())
    fail("chat template: extra variables must be an object, got {}", extra_vars.type_name());
  jinja::ValueDict globals;
  for (const auto& [name, text] : special_tokens_) globals.set(name, jinja::Value(text));
  if (extra_vars.is_object())
    for (auto it = extra_vars.begin(); it != extra_vars.end(); ++it) globals.set(it.key(), to_value(it.value()));
  globals.set("messages", to_value(messages));
  globals.set("tools", to_value(tools));
  globals.set("add_generation_prompt", jinja::Value(add_generation_prompt));
  return with_context(what_, [&] { return template_->render(globals); });
}

std::string ChatTemplate::render(const Json& messages, bool add_generation_prompt, const Json& tools,
                                 const Json& extra_vars) const {
  return render_any(messages, add_generation_prompt, tools, extra_vars);
}

std::string ChatTemplate::render(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                                 const nlohmann::ordered_json& tools,
                                 const nlohmann::ordered_json& extra_vars) const {
  return render_any(messages, add_generation_prompt, tools, extra_vars);
}

}  // namespace dsi
