// Jinja filters, one function each, with jinja2's behaviour; `tojson` is transformers'.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

#include "tokenizer/jinja_args.h"
#include "tokenizer/jinja_strings.h"

namespace dsi::jinja {
namespace {

using namespace detail;

// An attribute path "a.b" or index of an item, as jinja2's make_attrgetter resolves it.
Value attribute_of(const Value& item, const Value& attribute) {
  if (attribute.is_int()) return get_item(item, attribute);
  Value v = item;
  for (const std::string& part : py::split(need_string(attribute, "attribute"), std::string("."), -1)) {
    bool numeric = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    v = numeric ? get_item(v, Value(int64_t(std::stoll(part)))) : get_item(v, Value(part));
  }
  return v;
}

// Sort key comparison of jinja2's sort/min/max/unique: strings compare case-insensitively
// unless case_sensitive.
Value sort_key(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.is_string()) return Value(py::lower(v.as_string()));
  return v;
}

std::string html_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::vector<Value> filtered_items(const Value& input, const Args& args, bool by_attribute, bool keep_passing) {
  // select/reject(test, args...) or selectattr/rejectattr(attribute, test, args...)
  size_t first_test = by_attribute ? 1 : 0;
  if (by_attribute && args.empty()) fail("selectattr/rejectattr need an attribute");
  std::optional<std::string> test;
  if (args.size() > first_test) test = need_string(args[first_test], "test name");
  if (test && !is_test(*test)) fail("no test named '{}'", *test);
  Args test_args(args.begin() + std::min(args.size(), first_test + 1), args.end());
  std::vector<Value> out;
  for (const Value& item : iterate(input)) {
    Value subject = by_attribute ? attribute_of(item, args[0]) : item;
    bool pass = test ? apply_test(*test, subject, test_args) : subject.truthy();
    if (pass == keep_passing) out.push_back(item);
  }
  return out;
}

Value min_max(const Value& input, const Kwargs& kwargs, const Args& args, bool want_max) {
  bool case_sensitive = arg(args, kwargs, 0, "case_sensitive").value_or(Value(false)).truthy();
  std::optional<Value> attribute = arg(args, kwargs, 1, "attribute");
  ValueList items = iterate(input);
  if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
  size_t best = 0;
  auto key = [&](const Value& v) { return sort_key(attribute ? attribute_of(v, *attribute) : v, case_sensitive); };
  for (size_t i = 1; i < items.size(); ++i) {
    bool better = want_max ? less_than(key(items[best]), key(items[i])) : less_than(key(items[i]), key(items[best]));
    if (better) best = i;
  }
  return items[best];
}

Value to_int(const Value& v, const Value& fallback) {
  if (v.is_int() || v.is_bool()) return Value(v.as_int());
  if (v.is_float()) {
    double d = v.as_double();
    if (!std::isfinite(d)) return fallback;
    return Value(checked_int64(static_cast<long double>(std::trunc(d))));
  }
  if (v.is_string()) {
    std::string s = py::strip(v.as_string(), std::nullopt, true, true);
    int64_t i = 0;
    const char* b = s.data() + (!s.empty() && s[0] == '+' ? 1 : 0);
    auto [p, ec] = std::from_chars(b, s.data() + s.size(), i);
    if (ec == std::errc() && p == s.data() + s.size() && !s.empty()) return Value(i);
    double d = 0;
    auto [p2, ec2] = std::from_chars(b, s.data() + s.size(), d);
    if (ec2 == std::errc() && p2 == s.data() + s.size() && !s.empty() && std::isfinite(d))
      return Value(checked_int64(static_cast<long double>(std::trunc(d))));
  }
  return fallback;
}

Value to_float(const Value& v, const Value& fallback) {
  if (v.is_number()) return Value(v.as_double());
  if (v.is_string()) {
    std::string s = py::strip(v.as_string(), std::nullopt, true, true);
    double d = 0;
    const char* b = s.data() + (!s.empty() && s[0] == '+' ? 1 : 0);
    auto [p, ec] = std::from_chars(b, s.data() + s.size(), d);
    if (ec == std::errc() && p == s.data() + s.size() && !s.empty()) return Value(d);
  }
  return fallback;
}

Value filter_safe(const Value& input, const Args& /*args*/, const Kwargs& /*kwargs*/) { return input; }

Value filter_length(const Value& input, const Args& /*args*/, const Kwargs& /*kwargs*/) {
  if (input.is_undefined()) return Value(int64_t(0));
  if (input.is_string()) return Value(int64_t(char_count(input.as_string())));
  if (input.is_list()) return Value(int64_t(input.as_list().size()));
  if (input.is_dict()) return Value(int64_t(input.as_dict().entries.size()));
  fail("object of type '{}' has no len()", input.type_name());
}

Value filter_default(const Value& input, const Args& args, const Kwargs& kwargs) {
  Value fallback = arg(args, kwargs, 0, "default_value").value_or(Value(std::string()));
  bool boolean = arg(args, kwargs, 1, "boolean").value_or(Value(false)).truthy();
  if (input.is_undefined() || (boolean && !input.truthy())) return fallback;
  return input;
}

Value filter_tojson(const Value& input, const Args& args, const Kwargs& kwargs) {
  check_arity("tojson", args, kwargs, 1, {"ensure_ascii", "indent", "separators", "sort_keys"});
  JsonStyle style;
  style.ensure_ascii = arg(args, kwargs, 0, "ensure_ascii").value_or(Value(false)).truthy();
  if (auto indent = arg(args, kwargs, 99, "indent"); indent && !indent->is_none()) {
    if (indent->is_string()) fail("tojson: a string indent is not supported");
    style.indent = int(std::clamp<int64_t>(need_int(*indent, "tojson indent"), 0, 64));
  }
  style.sort_keys = arg(args, kwargs, 99, "sort_keys").value_or(Value(false)).truthy();
  if (auto seps = arg(args, kwargs, 99, "separators"); seps && !seps->is_none()) {
    if (!seps->is_list() || seps->as_list().size() != 2) fail("tojson: separators must be a pair of strings");
    style.item_separator = need_string(seps->as_list()[0], "tojson separators");
    style.key_separator = need_string(seps->as_list()[1], "tojson separators");
    if (style.item_separator.empty()) fail("tojson: an empty item separator is not supported");
  }
  return Value(to_json(input, style));
}

Value filter_string(const Value& input, const Args& /*args*/, const Kwargs& /*kwargs*/) {
  return Value(input.to_str());
}

Value filter_trim(const Value& input, const Args& args, const Kwargs& kwargs) {
  auto chars = optional_string(arg(args, kwargs, 0, "chars"), "trim");
  return Value(py::strip(input.to_str(), chars, true, true));
}

Value filter_upper(const Value& input, const Args& /*args*/, const Kwargs& /*kwargs*/) {
  return Value(py::upper(input.to_str()));
}

Value filter_lower(const Value& input, const Args& /*args*/, const Kwargs& /*kwargs*/) {
  return Value(py::lower(input.to_str()));
}

Value filter_title(const Value& input, const Args& /*args*/, const Kwargs& /*kwargs*/) {
  return Value(py::title(input.to_str()));
}

Value filter_capitalize(const Value& input, const Args& /*args*/, const Kwargs& /*kwargs*/) {
  return Value(py::capitalize(input.to_str()));
}

Value filter_escape(const Value& input, const Args& /*args*/, const Kwargs& /*kwargs*/) {
  return Value(html_escape(input.to_str()));
}

Value filter_replace(const Value& input, const Args& args, const Kwargs& kwargs) {
  std::string old = need_string(arg(args, kwargs, 0, "old").value_or(Value()), "replace");
  std::string with = need_string(arg(args, kwargs, 1, "new").value_or(Value()), "replace");
  auto count = arg(args, kwargs, 2, "count");
  return Value(py::replace(input.to_str(), old, with, count && !count->is_none() ? need_int(*count, "replace") : -1));
}

Value filter_wordcount(const Value& input, const Args& /*args*/, const Kwargs& /*kwargs*/) {
  return Value(int64_t(py::split(input.to_str(), std::nullopt, -1).size()));
}

Value filter_int(const Value& input, const Args& args, const Kwargs& kwargs) {
  return to_int(input, arg(args, kwargs, 0, "default").value_or(Value(int64_t(0))));
}

Value filter_float(const Value& input, const Args& args, const Kwargs& kwargs) {
  return to_float(input, arg(args, kwargs, 0, "default").value_or(Value(0.0)));
}

Value filter_abs(const Value& input, const Args& /*args*/, const Kwargs& /*kwargs*/) {
  if (input.is_float()) return Value(std::fabs(input.as_double()));
  int64_t i = need_int(input, "abs");
  if (i == std::numeric_limits<int64_t>::min()) fail("integer overflow");
  return Value(i < 0 ? -i : i);
}

Value filter_round(const Value& input, const Args& args, const Kwargs& kwargs) {
  int64_t precision = need_int(arg(args, kwargs, 0, "precision").value_or(Value(int64_t(0))), "round");
  std::string method = need_string(arg(args, kwargs, 1, "method").value_or(Value("common")), "round");
  if (!input.is_number()) fail("round: expected a number, got {}", input.type_name());
  double scale = std::pow(10.0, double(precision));
  double x = input.as_double() * scale;
  if (method == "common") x = std::round(x);
  else if (method == "ceil") x = std::ceil(x);
  else if (method == "floor") x = std::floor(x);
  else fail("round: method must be common, ceil or floor");
  return Value(x / scale);
}

Value filter_first(const Value& input, const Args& /*args*/, const Kwargs& /*kwargs*/, std::string_view name) {
  ValueList items = iterate(input);
  if (items.empty()) return Value::undefined(fmt::format("No {} item, sequence was empty.", name));
  return name == "first" ? items.front() : items.back();
}

Value filter_list(const Value& input, const Args& /*args*/, const Kwargs& /*kwargs*/) {
  return Value(iterate(input));
}

Value filter_reverse(const Value& input, const Args& /*args*/, const Kwargs& /*kwargs*/) {
  if (input.is_string()) {
    std::vector<std::string> cs = py::chars(input.as_string());
    std::string out;
    for (size_t i = cs.size(); i-- > 0;) out += cs[i];
    return Value(std::move(out));
  }
  ValueList items = iterate(input);
  std::reverse(items.begin(), items.end());
  return Value(std::move(items));
}

Value filter_join(const Value& input, const Args& args, const Kwargs& kwargs) {
  std::string sep = arg(args, kwargs, 0, "d").value_or(Value(std::string())).to_str();
  std::optional<Value> attribute = arg(args, kwargs, 1, "attribute");
  std::string out;
  bool first = true;
  for (const Value& item : iterate(input)) {
    if (!first) out += sep;
    first = false;
    out += (attribute ? attribute_of(item, *attribute) : item).to_str();
    check_size(out.size());
  }
  return Value(std::move(out));
}

Value filter_items(const Value& input, const Args& args, const Kwargs& kwargs, std::string_view name) {
  if (input.is_undefined()) return Value(ValueList{});
  if (!input.is_dict()) fail("{}: expected a mapping, got {}", name, input.type_name());
  std::vector<std::pair<std::string, Value>> entries = input.as_dict().entries;
  if (name == "dictsort") {
    bool case_sensitive = arg(args, kwargs, 0, "case_sensitive").value_or(Value(false)).truthy();
    std::string by = need_string(arg(args, kwargs, 1, "by").value_or(Value("key")), "dictsort");
    bool reverse = arg(args, kwargs, 2, "reverse").value_or(Value(false)).truthy();
    std::stable_sort(entries.begin(), entries.end(), [&](const auto& x, const auto& y) {
      Value kx = by == "value" ? x.second : Value(x.first);
      Value ky = by == "value" ? y.second : Value(y.first);
      return reverse ? less_than(sort_key(ky, case_sensitive), sort_key(kx, case_sensitive))
                     : less_than(sort_key(kx, case_sensitive), sort_key(ky, case_sensitive));
    });
  }
  ValueList out;
  for (auto& [k, v] : entries) out.push_back(Value::tuple({Value(k), v}));
  return Value(std::move(out));
}

Value filter_sort(const Value& input, const Args& args, const Kwargs& kwargs) {
  bool reverse = arg(args, kwargs, 0, "reverse").value_or(Value(false)).truthy();
  bool case_sensitive = arg(args, kwargs, 1, "case_sensitive").value_or(Value(false)).truthy();
  std::optional<Value> attribute = arg(args, kwargs, 2, "attribute");
  ValueList items = iterate(input);
  auto key = [&](const Value& v) { return sort_key(attribute ? attribute_of(v, *attribute) : v, case_sensitive); };
  std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
    return reverse ? less_than(key(y), key(x)) : less_than(key(x), key(y));
  });
  return Value(std::move(items));
}

Value filter_unique(const Value& input, const Args& args, const Kwargs& kwargs) {
  bool case_sensitive = arg(args, kwargs, 0, "case_sensitive").value_or(Value(false)).truthy();
  std::optional<Value> attribute = arg(args, kwargs, 1, "attribute");
  ValueList out, seen;
  for (const Value& item : iterate(input)) {
    Value k = sort_key(attribute ? attribute_of(item, *attribute) : item, case_sensitive);
    if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, k); })) {
      seen.push_back(k);
      out.push_back(item);
    }
  }
  return Value(std::move(out));
}

Value filter_min(const Value& input, const Args& args, const Kwargs& kwargs, std::string_view name) {
  return min_max(input, kwargs, args, name == "max");
}

Value filter_sum(const Value& input, const Args& args, const Kwargs& kwargs) {
  std::optional<Value> attribute = arg(args, kwargs, 0, "attribute");
  Value total = arg(args, kwargs, 1, "start").value_or(Value(int64_t(0)));
  for (const Value& item : iterate(input))
    total = binary_operator("+", total, attribute ? attribute_of(item, *attribute) : item);
  return total;
}

Value filter_select(const Value& input, const Args& args, const Kwargs& /*kwargs*/, std::string_view name) {
  return Value(filtered_items(input, args, false, name == "select"));
}

Value filter_selectattr(const Value& input, const Args& args, const Kwargs& /*kwargs*/, std::string_view name) {
  return Value(filtered_items(input, args, true, name == "selectattr"));
}

Value filter_map(const Value& input, const Args& args, const Kwargs& kwargs) {
  ValueList out;
  if (auto attribute = arg({}, kwargs, 0, "attribute")) {
    std::optional<Value> fallback = arg({}, kwargs, 0, "default");
    for (const Value& item : iterate(input)) {
      Value v = attribute_of(item, *attribute);
      out.push_back(v.is_undefined() && fallback ? *fallback : v);
    }
    return Value(std::move(out));
  }
  if (args.empty()) fail("map: needs a filter name or attribute=");
  const std::string& filter = need_string(args[0], "map");
  if (!is_filter(filter)) fail("no filter named '{}'", filter);
  Args rest(args.begin() + 1, args.end());
  for (const Value& item : iterate(input)) out.push_back(apply_filter(filter, item, rest, kwargs));
  return Value(std::move(out));
}

Value filter_attr(const Value& input, const Args& args, const Kwargs& kwargs) {
  return get_attribute(input, need_string(arg(args, kwargs, 0, "name").value_or(Value()), "attr"));
}

Value filter_indent(const Value& input, const Args& args, const Kwargs& kwargs) {
  Value width_v = arg(args, kwargs, 0, "width").value_or(Value(int64_t(4)));
  std::string pad = width_v.is_string() ? width_v.as_string()
                                        : std::string(size_t(std::clamp<int64_t>(need_int(width_v, "indent"), 0, 1024)), ' ');
  bool first = arg(args, kwargs, 1, "first").value_or(Value(false)).truthy();
  bool blank = arg(args, kwargs, 2, "blank").value_or(Value(false)).truthy();
  std::vector<std::string> lines = py::split(input.to_str(), std::string("\n"), -1);
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i) out += '\n';
    bool indent_line = (i > 0 || first) && (blank || !py::strip(lines[i], std::nullopt, true, true).empty());
    if (indent_line) out += pad;
    out += lines[i];
  }
  return Value(std::move(out));
}

using FilterFn = Value (*)(const Value&, const Args&, const Kwargs&, std::string_view);

struct FilterEntry {
  std::string_view name;
  FilterFn fn;
};

const FilterEntry filters[] = {
    {"safe", [](const Value& i, const Args& a, const Kwargs& k, std::string_view) { return filter_safe(i, a, k); }},
    {"length", [](const Value& i, const Args& a, const Kwargs& k, std::string_view) { return filter_length(i, a, k); }},
    {"count", [](const Value& i, const Args& a, const Kwargs& k, std::string_view) { return filter_length(i, a, k); }},
    {"default", [](const Value& i, const Args& a, const Kwargs& k, std::string_view) { return filter_default(i, a, k); }},
    {"d", [](const Value& i, const Args& a, const Kwargs& k, std::string_view) { return filter_default(i, a, k); }},
    {"tojson", [](const Value& i, const Args& a, const Kwargs& k, std::string_view) { return filter_tojson(i, a, k); }},
    {"string", [](const Value& i, const Args& a, const Kwargs& k, std::string_view) { return filter_string(i, a, k); }},
    {"trim", [](const Value& i, const Args& a, const Kwargs& k, std::string_view) { return filter_trim(i, a, k); }},
    {"upper", [](const Value& i, const Args& a, const Kwargs& k, std::string_view) { return filter_upper(i, a, k); }},
    {"lower", [](const Value& i, const Args& a, const Kwargs& k, std::string_view) { return filter_lower(i, a, k); }},
    {"title", [](const Value& i, const Args& a, const Kwargs& k, std::string_view) { return filter_title(i, a, k); }},
    {"capitalize", [](const Value& i, const Args& a, const Kwargs& k, std::string_view) { return filter_capitalize(i, a, k); }},
    {"escape", [](const Value& i, const Args& a, const Kwargs& k, std::string_view) { return filter_escape(i, a, k); }},
    {"e", [](const Value& i, const Args& a, const Kwargs& k, std::string_view) { return filter_escape(i, a, k); }},
    {"replace", [](const Value& i, const Args& a, const Kwargs& k, std::string_view) { return filter_replace(i, a, k); }},
    {"wordcount", [](const Value& i, const Args& a, const Kwargs& k, std::string_view) { return filter_wordcount(i, a, k); }},
    {"int", [](const Value& i, const Args& a, const Kwargs& k, std::string_view) { return filter_int(i, a, k); }},
    {"float", [](const Value& i, const Args& a, const Kwargs& k, std::string_view) { return filter_float(i, a, k); }},
    {"abs", [](const Value& i, const Args& a, const Kwargs& k, std::string_view) { return filter_abs(i, a, k); }},
    {"round", [](const Value& i, const Args& a, const Kwargs& k, std::string_view) { return filter_round(i, a, k); }},
    {"first", [](const Value& i, const Args& a, const Kwargs& k, std::string_view n) { return filter_first(i, a, k, n); }},
    {"last", [](const Value& i, const Args& a, const Kwargs& k, std::string_view n) { return filter_first(i, a, k, n); }},
    {"list", [](const Value& i, const Args& a, const Kwargs& k, std::string_view) { return filter_list(i, a, k); }},
    {"reverse", [](const Value& i, const Args& a, const Kwargs& k, std::string_view) { return filter_reverse(i, a, k); }},
    {"join", [](const Value& i, const Args& a, const Kwargs& k, std::string_view) { return filter_join(i, a, k); }},
    {"items", [](const Value& i, const Args& a, const Kwargs& k, std::string_view n) { return filter_items(i, a, k, n); }},
    {"dictsort", [](const Value& i, const Args& a, const Kwargs& k, std::string_view n) { return filter_items(i, a, k, n); }},
    {"sort", [](const Value& i, const Args& a, const Kwargs& k, std::string_view) { return filter_sort(i, a, k); }},
    {"unique", [](const Value& i, const Args& a, const Kwargs& k, std::string_view) { return filter_unique(i, a, k); }},
    {"min", [](const Value& i, const Args& a, const Kwargs& k, std::string_view n) { return filter_min(i, a, k, n); }},
    {"max", [](const Value& i, const Args& a, const Kwargs& k, std::string_view n) { return filter_min(i, a, k, n); }},
    {"sum", [](const Value& i, const Args& a, const Kwargs& k, std::string_view) { return filter_sum(i, a, k); }},
    {"select", [](const Value& i, const Args& a, const Kwargs& k, std::string_view n) { return filter_select(i, a, k, n); }},
    {"reject", [](const Value& i, const Args& a, const Kwargs& k, std::string_view n) { return filter_select(i, a, k, n); }},
    {"selectattr", [](const Value& i, const Args& a, const Kwargs& k, std::string_view n) { return filter_selectattr(i, a, k, n); }},
    {"rejectattr", [](const Value& i, const Args& a, const Kwargs& k, std::string_view n) { return filter_selectattr(i, a, k, n); }},
    {"map", [](const Value& i, const Args& a, const Kwargs& k, std::string_view) { return filter_map(i, a, k); }},
    {"attr", [](const Value& i, const Args& a, const Kwargs& k, std::string_view) { return filter_attr(i, a, k); }},
    {"indent", [](const Value& i, const Args& a, const Kwargs& k, std::string_view) { return filter_indent(i, a, k); }},
};

const FilterEntry* find_filter(std::string_view name) {
  for (const FilterEntry& f : filters)
    if (f.name == name) return &f;
  return nullptr;
}

}  // namespace

bool is_filter(std::string_view name) { return find_filter(name) != nullptr; }

Value apply_filter(std::string_view name, const Value& input, const Args& args, const Kwargs& kwargs) {
  const FilterEntry* f = find_filter(name);
  if (!f) fail("no filter named '{}'", name);
  return f->fn(input, args, kwargs, name);
}

}  // namespace dsi::jinja
