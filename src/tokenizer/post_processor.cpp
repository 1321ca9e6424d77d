#include "tokenizer/post_processor.h"

namespace dsi {
namespace {

void add_from_json(const Json& j, const std::string& what, SpecialTokenWrap& wrap) {
  std::string type = json_get<std::string>(j, "type", what);
  SpecialTokenWrap mine;
  if (type == "ByteLevel") {
    return;  // it only trims offsets
  } else if (type == "Sequence") {
    const Json& list = j.contains("processors") ? j["processors"] : Json();
    if (!list.is_array()) fail("{}: Sequence needs a 'processors' array", what);
    for (size_t i = 0; i < list.size(); ++i) add_from_json(list[i], fmt::format("{}.processors[{}]", what, i), wrap);
    return;
  } else if (type == "TemplateProcessing") {
    if (!j.contains("single") || !j["single"].is_array()) fail("{}: missing array 'single'", what);
    const Json& specials = j.contains("special_tokens") ? j["special_tokens"] : Json::object();
    bool seen_sequence = false;
    for (const Json& piece : j["single"]) {
      if (piece.contains("Sequence")) {
        std::string id = json_get<std::string>(piece["Sequence"], "id", what + ".single");
        if (id != "A" || seen_sequence) fail("{}: the single template must use sequence $A once", what);
        seen_sequence = true;
      } else if (piece.contains("SpecialToken")) {
        std::string name = json_get<std::string>(piece["SpecialToken"], "id", what + ".single");
        if (!specials.contains(name)) fail("{}: special token '{}' is not in special_tokens", what, name);
        const Json& ids = specials[name].contains("ids") ? specials[name]["ids"] : Json();
        if (!ids.is_array()) fail("{}.special_tokens.{}: missing array 'ids'", what, name);
        auto& target = seen_sequence ? mine.suffix : mine.prefix;
        for (const Json& id : ids) {
          if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX)
            fail("{}.special_tokens.{}: bad id {}", what, name, id.dump());
          target.push_back(int32_t(id.get<int64_t>()));
        }
      } else {
        fail("{}: unknown template piece {}", what, piece.dump());
      }
    }
    if (!seen_sequence) fail("{}: the single template has no $A", what);
  } else if (type == "BertProcessing" || type == "RobertaProcessing") {
    // {"cls": ["[CLS]", 101], "sep": ["[SEP]", 102]}
    auto id_of = [&](const char* key) {
      const Json& v = j.contains(key) ? j[key] : Json();
      if (!v.is_array() || v.size() != 2 || !v[1].is_number_integer())
        fail("{}: field '{}' must be [token, id]", what, key);
      return int32_t(v[1].get<int64_t>());
    };
    mine.prefix.push_back(id_of("cls"));
    mine.suffix.push_back(id_of("sep"));
  } else {
    fail("{}: unsupported post-processor type '{}' (supported: TemplateProcessing, ByteLevel, "
         "BertProcessing, RobertaProcessing, Sequence)", what, type);
  }
  // A later processor wraps what the earlier ones produced.
  mine.prefix.insert(mine.prefix.end(), wrap.prefix.begin(), wrap.prefix.end());
  wrap.suffix.insert(wrap.suffix.end(), mine.suffix.begin(), mine.suffix.end());
  wrap.prefix = std::move(mine.prefix);
}

}  // namespace

SpecialTokenWrap post_processor_from_json(const Json& j, std::string_view what) {
  SpecialTokenWrap wrap;
  if (!j.is_null()) add_from_json(j, std::string(what), wrap);
  return wrap;
}

}  // namespace dsi
