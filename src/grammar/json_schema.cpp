#include "grammar/json_schema.h"

#include <cmath>

#include "core/error.h"
#include "grammar/regex.h"

namespace dsi::grammar {

// alt += "|" + x, spelt so that GCC 12's -Wrestrict has no false positive.
// '"' + x + '"' (a JSON string's regex), spelt for the same reason.
inline std::string quoted(const std::string& x) {
  std::string q;
  q.reserve(x.size() + 2);
  q.push_back('"');
  q.append(x);
  q.push_back('"');
  return q;
}

inline void append_alt(std::string& alt, const std::string& x) {
  if (!alt.empty()) alt.push_back('|');
  alt.append(x);
}

namespace {

const std::string kChar = R"((?:[^"\\\u0000-\u001f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4}))";
const std::string kString = "\"" + kChar + "*\"";
const std::string kInteger = "-?(?:0|[1-9][0-9]{0,15})";
const std::string kNumber = kInteger + R"((?:\.[0-9]{1,16})?(?:[eE][+-]?[0-9]{1,2})?)";

std::string group(const std::string& r) { return "(?:" + r + ")"; }

// Any JSON value (a schema without constraints, json_object): nesting up to `depth`, strings
// of at most kAnyString characters, so that a model that never chooses to close a string
// still ends with a valid document.
// Members and items repeat in a loop (a bounded count would copy the nested automaton).
constexpr int kAnyString = 32;
const std::string kAnyStr = "\"" + kChar + "{0," + std::to_string(kAnyString) + "}\"";
const std::string kMore = ")*";

std::string any_value(int depth);
std::string any_object(int depth) {  // members' values nest up to depth - 1
  std::string inner = any_value(depth - 1);
  return R"(\{(?:)" + kAnyStr + ":" + inner + "(?:," + kAnyStr + ":" + inner + kMore + R"()?\})";
}
std::string any_value(int depth) {
  std::string scalar = kAnyStr + "|" + kNumber + "|true|false|null";
  if (depth <= 0) return group(scalar);
  std::string inner = any_value(depth - 1);
  std::string array = R"(\[(?:)" + inner + "(?:," + inner + kMore + R"()?\])";
  return group(scalar + "|" + any_object(depth) + "|" + array);
}

}  // namespace

namespace {

class Compiler {
 public:
  explicit Compiler(const Json& root) : root_(root) {}

  std::string value(const Json& s, int ref_depth) {
    if (s.is_boolean()) {
      if (!s.get<bool>()) fail("JSON schema: the schema false matches nothing");
      return any_value(kAnyDepth);
    }
    if (!s.is_object()) fail("JSON schema: a schema must be an object or a boolean, got {}", json_type_name(s));
    if (auto it = s.find("$ref"); it != s.end()) return ref(*it, ref_depth);
    if (auto it = s.find("const"); it != s.end()) return escape_regex(it->dump());
    if (auto it = s.find("enum"); it != s.end()) {
      if (!it->is_array() || it->empty()) fail("JSON schema: 'enum' must be a non-empty array");
      std::string alt;
      for (const auto& v : *it) append_alt(alt, escape_regex(v.dump()));
      return group(alt);
    }
    for (const char* key : {"anyOf", "oneOf"})
      if (auto it = s.find(key); it != s.end()) {
        if (!it->is_array() || it->empty()) fail("JSON schema: '{}' must be a non-empty array", key);
        std::string alt;
        for (const auto& sub : *it) append_alt(alt, value(merged(s, sub, key), ref_depth));
        return group(alt);
      }
    if (auto it = s.find("allOf"); it != s.end()) {
      if (!it->is_array() || it->size() != 1) fail("JSON schema: 'allOf' is supported with one schema only");
      return value(merged(s, (*it)[0], "allOf"), ref_depth);
    }
    auto type = s.find("type");
    if (type == s.end()) {
      if (s.contains("properties")) return object(s, ref_depth);
      if (s.contains("items")) return array(s, ref_depth);
      return any_value(kAnyDepth);
    }
    if (type->is_array()) {
      std::string alt;
      for (const auto& t : *type) {
        if (!t.is_string()) fail("JSON schema: 'type' lists must hold strings");
        append_alt(alt, typed(s, t.get<std::string>(), ref_depth));
      }
      if (alt.empty()) fail("JSON schema: 'type' is an empty list");
      return group(alt);
    }
    if (!type->is_string()) fail("JSON schema: 'type' must be a string or a list of strings");
    return typed(s, type->get<std::string>(), ref_depth);
  }

 private:
  const Json& root_;

  // The parent's other keywords apply to each alternative (as in {"type": ..., "anyOf": [...]}).
  static Json merged(const Json& parent, const Json& sub, const char* key) {
    Json m = parent;
    m.erase(key);
    if (sub.is_object())
      for (const auto& [k, v] : sub.items()) m[k] = v;
    else
      return sub;
    return m;
  }

  std::string ref(const Json& r, int depth) {
    if (!r.is_string()) fail("JSON schema: '$ref' must be a string");
    std::string path = r.get<std::string>();
    if (depth >= kMaxRefDepth) fail("JSON schema: '$ref' {} recurses deeper than {}", path, kMaxRefDepth);
    if (path == "#") return value(root_, depth + 1);
    for (const char* prefix : {"#/$defs/", "#/definitions/"}) {
      std::string p = prefix;
      if (path.rfind(p, 0) == 0) {
        std::string name = path.substr(p.size());
        const Json& defs = root_.value(p.substr(2, p.size() - 3), Json::object());
        auto it = defs.find(name);
        if (it == defs.end()) fail("JSON schema: '$ref' {} names no definition", path);
        return value(*it, depth + 1);
      }
    }
    fail("JSON schema: '$ref' {} is not supported (only #/$defs/NAME and #/definitions/NAME)", path);
  }

  std::string typed(const Json& s, const std::string& t, int ref_depth) {
    if (t == "string") return string(s);
    if (t == "integer") return integer(s);
    if (t == "number") return kNumber;
    if (t == "boolean") return "(?:true|false)";
    if (t == "null") return "null";
    if (t == "object") return object(s, ref_depth);
    if (t == "array") return array(s, ref_depth);
    fail("JSON schema: type '{}' is not a JSON Schema type", t);
  }

  static int count(const Json& s, const char* key, int fallback) {
    auto it = s.find(key);
    if (it == s.end()) return fallback;
    if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > 1000)
      fail("JSON schema: '{}' must be an integer in [0, 1000]", key);
    return int(it->get<int64_t>());
  }

  static std::string string(const Json& s) {
    if (auto it = s.find("pattern"); it != s.end()) {
      if (!it->is_string()) fail("JSON schema: 'pattern' must be a string");
      std::string p = it->get<std::string>();
      if (!p.empty() && p.front() == '^') p = p.substr(1);
      if (!p.empty() && p.back() == '$' && (p.size() < 2 || p[p.size() - 2] != '\\')) p.pop_back();
      compile_regex(p);  // its errors name the pattern
      return quoted(group(p));
    }
    if (auto it = s.find("format"); it != s.end() && it->is_string()) {
      const std::string f = it->get<std::string>();
      const std::string date = R"([0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01]))";
      const std::string time = R"((?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?(?:Z|[+-][0-9]{2}:[0-9]{2})?)";
      if (f == "date") return quoted(date);
      if (f == "time") return quoted(time);
      if (f == "date-time") return quoted(date + "T" + time);
      if (f == "uuid") return R"("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")";
      if (f == "email") return R"("[a-zA-Z0-9._%+-]{1,32}@[a-zA-Z0-9-]{1,32}(?:\.[a-zA-Z]{2,8}){1,3}")";
    }
    int lo = count(s, "minLength", 0), hi = count(s, "maxLength", -1);
    if (hi >= 0 && hi < lo) fail("JSON schema: maxLength < minLength");
    if (lo == 0 && hi < 0) return kString;
    return quoted(kChar + "{" + std::to_string(lo) + "," + (hi < 0 ? std::string() : std::to_string(hi)) + "}");
  }

  static std::string integer(const Json& s) {
    auto bound = [&](const char* key, const char* exclusive, int dir) -> std::optional<int64_t> {
      std::optional<int64_t> b;
      if (auto it = s.find(key); it != s.end() && it->is_number()) b = int64_t(dir > 0 ? std::ceil(it->get<double>()) : std::floor(it->get<double>()));
      if (auto it = s.find(exclusive); it != s.end() && it->is_number())
        b = int64_t(dir > 0 ? std::floor(it->get<double>()) + 1 : std::ceil(it->get<double>()) - 1);
      return b;
    };
    auto lo = bound("minimum", "exclusiveMinimum", 1), hi = bound("maximum", "exclusiveMaximum", -1);
    if (lo && hi) {
      if (*hi < *lo) fail("JSON schema: an integer range with maximum below minimum");
      if (*hi - *lo <= 1000) {
        std::string alt;
        for (int64_t v = *lo; v <= *hi; ++v) append_alt(alt, escape_regex(std::to_string(v)));
        return group(alt);
      }
    }
    if (lo && *lo >= 0) return "(?:0|[1-9][0-9]{0,15})";
    return kInteger;
  }

  std::string array(const Json& s, int ref_depth) {
    std::string item = s.contains("items") ? value(s["items"], ref_depth) : any_value(kAnyDepth - 1);
    int lo = count(s, "minItems", 0), hi = count(s, "maxItems", -1);
    if (hi >= 0 && hi < lo) fail("JSON schema: maxItems < minItems");
    if (hi == 0) return R"(\[\])";
    std::string rest = "(?:," + item + "){" + std::to_string(std::max(lo - 1, 0)) + "," +
                       (hi < 0 ? "" : std::to_string(hi - 1)) + "}";
    std::string some = item + rest;
    return lo == 0 ? R"(\[(?:)" + some + R"()?\])" : R"(\[)" + some + R"(\])";
  }

  std::string object(const Json& s, int ref_depth) {
    auto props = s.find("properties");
    if (props == s.end() || !props->is_object() || props->empty()) {
      std::string val = any_value(kAnyDepth - 1);
      if (auto ap = s.find("additionalProperties"); ap != s.end()) {
        if (ap->is_boolean() && !ap->get<bool>()) return R"(\{\})";
        if (ap->is_object()) val = value(*ap, ref_depth);
      }
      return R"(\{(?:)" + kString + ":" + val + "(?:," + kString + ":" + val + R"()*)?\})";
    }
    std::vector<std::string> required;
    if (auto r = s.find("required"); r != s.end() && r->is_array())
      for (const auto& x : *r)
        if (x.is_string()) required.push_back(x.get<std::string>());
    struct Prop {
      std::string regex;
      bool required;
    };
    std::vector<Prop> list;
    // Json keeps keys sorted, so properties come in name order (any order is valid JSON).
    for (const auto& [name, sub] : props->items()) {
      bool req = std::find(required.begin(), required.end(), name) != required.end();
      list.push_back({escape_regex(Json(name).dump()) + ":" + value(sub, ref_depth), req});
    }
    for (const auto& r : required)
      if (!props->contains(r)) fail("JSON schema: required property '{}' is not in 'properties'", r);
    // The first property present is k (no required one before it); after it, required
    // properties follow with a comma, optional ones may.
    std::string alt;
    size_t first_required = list.size();
    for (size_t i = 0; i < list.size(); ++i)
      if (list[i].required) {
        first_required = i;
        break;
      }
    for (size_t k = 0; k < list.size() && k <= first_required; ++k) {
      std::string seq = list[k].regex;
      for (size_t j = k + 1; j < list.size(); ++j)
        seq += list[j].required ? "," + list[j].regex : "(?:," + list[j].regex + ")?";
      append_alt(alt, seq);
    }
    if (first_required == list.size()) return R"(\{(?:)" + alt + R"()?\})";
    return R"(\{(?:)" + alt + R"()\})";
  }
};

}  // namespace

std::string json_schema_regex(const Json& schema) { return Compiler(schema).value(schema, 0); }

std::string json_object_regex() { return any_object(kAnyDepth); }

}  // namespace dsi::grammar
