#include "core/json.h"

#include <vector>

namespace dsi {

namespace {

// Where the parser is, for error messages: one entry per open array or object.
struct JsonLevel {
  bool is_array = false;
  std::string key;        // objects: the key of the value being read
  size_t n_elements = 0;  // arrays: elements started so far
};

// "messages[2].content"; `pending` says the innermost array's next element (not yet started)
// is the one at fault.
std::string json_path(const std::vector<JsonLevel>& levels, bool pending) {
  std::string path;
  for (size_t i = 0; i < levels.size(); ++i) {
    const JsonLevel& l = levels[i];
    if (l.is_array) {
      size_t index = l.n_elements - (pending && i + 1 == levels.size() ? 0 : 1);
      path += fmt::format("[{}]", index);
    } else {
      if (i > 0) path += '.';
      path += clip_text(l.key, 40);
    }
  }
  return path;
}

std::string top_field(const std::vector<JsonLevel>& levels) {
  return !levels.empty() && !levels[0].is_array ? levels[0].key : std::string();
}

// nlohmann's messages quote the offending token, which may be the whole input.
std::string clip_parser_message(const char* what) { return clip_text(what, 200); }

}  // namespace

template <class J>
J parse_json_bounded(std::string_view text, int max_depth) {
  using Event = typename J::parse_event_t;
  std::vector<JsonLevel> levels;
  auto element_started = [&] {
    if (!levels.empty() && levels.back().is_array) ++levels.back().n_elements;
  };
  // The parser itself is iterative; the callback sees every container open before it is
  // built, so nothing deeper than max_depth ever exists.
  typename J::parser_callback_t track = [&](int, Event event, J& parsed) {
    switch (event) {
      case Event::object_start:
      case Event::array_start:
        element_started();
        if (int(levels.size()) >= max_depth)
          throw JsonParseError(fmt::format("JSON nested deeper than {} levels{}", max_depth,
                                           levels.empty() ? "" : " at " + clip_text(json_path(levels, false), 120)),
                               json_path(levels, false), top_field(levels));
        levels.push_back({event == Event::array_start, {}, 0});
        break;
      case Event::key: levels.back().key = parsed.template get<std::string>(); break;
      case Event::value: element_started(); break;
      case Event::object_end:
      case Event::array_end: levels.pop_back(); break;
    }
    return true;
  };
  try {
    return J::parse(text.begin(), text.end(), track);
  } catch (const typename J::out_of_range& e) {
    // 406: a number the parser cannot hold (1e400); the value was not started yet.
    std::string path = json_path(levels, true);
    throw JsonParseError(fmt::format("number out of range{}: {}", path.empty() ? "" : " in '" + path + "'",
                                     clip_parser_message(e.what())),
                         path, top_field(levels));
  } catch (const typename J::exception& e) {
    throw JsonParseError(clip_parser_message(e.what()), "", "");
  }
}

template Json parse_json_bounded<Json>(std::string_view, int);
template nlohmann::ordered_json parse_json_bounded<nlohmann::ordered_json>(std::string_view, int);

Json parse_json(std::string_view text, std::string_view what) {
  try {
    return parse_json_bounded<Json>(text);
  } catch (const JsonParseError& e) {
    fail("{}: malformed JSON: {}", what, e.what());
  }
}

std::string clip_text(std::string_view s, size_t max_bytes) {
  if (s.size() <= max_bytes) return std::string(s);
  size_t cut = max_bytes;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;  // not inside a character
  return fmt::format("{}... ({} bytes)", s.substr(0, cut), s.size());
}

std::string_view json_type_name(const Json& j) {
  switch (j.type()) {
    case Json::value_t::null: return "null";
    case Json::value_t::boolean: return "boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned: return "integer";
    case Json::value_t::number_float: return "number";
    case Json::value_t::string: return "string";
    case Json::value_t::array: return "array";
    case Json::value_t::object: return "object";
    default: return "binary";
  }
}

}  // namespace dsi
