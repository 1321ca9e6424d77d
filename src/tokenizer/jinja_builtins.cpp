#include "tokenizer/jinja_builtins.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <ctime>
#include <limits>
#include <optional>

#include "core/error.h"
#include "tokenizer/jinja_args.h"
#include "tokenizer/jinja_strings.h"
#include "tokenizer/utf8.h"

namespace dsi::jinja {
namespace {

using namespace detail;


constexpr std::string_view test_names[] = {
    "boolean", "callable", "defined", "divisibleby", "eq",     "equalto", "escaped", "even",     "false",
    "float",   "ge",       "gt",      "greaterthan", "in",     "integer", "iterable", "le",      "lessthan",
    "lower",   "lt",       "mapping", "ne",          "none",   "number",  "odd",     "sameas",   "sequence",
    "string",  "true",     "undefined", "upper"};

constexpr std::string_view function_names[] = {"raise_exception", "namespace", "range", "dict", "strftime_now"};

Value arithmetic(std::string_view op, const Value& a, const Value& b) {
  if (!a.is_number() || !b.is_number())
    fail("unsupported operand type(s) for {}: '{}' and '{}'", op, a.type_name(), b.type_name());
  bool use_float = a.is_float() || b.is_float();
  if (op == "/") {
    if (b.as_double() == 0) fail("division by zero");
    return Value(a.as_double() / b.as_double());
  }
  if (use_float) {
    double x = a.as_double(), y = b.as_double();
    if (op == "+") return Value(x + y);
    if (op == "-") return Value(x - y);
    if (op == "*") return Value(x * y);
    if (op == "**") return Value(std::pow(x, y));
    if (y == 0) fail("float division by zero");
    if (op == "//") return Value(std::floor(x / y));
    double m = std::fmod(x, y);
    if (m != 0 && ((m < 0) != (y < 0))) m += y;
    return Value(m);
  }
  int64_t x = a.as_int(), y = b.as_int();
  int64_t r = 0;
  if (op == "+") {
    if (__builtin_add_overflow(x, y, &r)) fail("integer overflow");
    return Value(r);
  }
  if (op == "-") {
    if (__builtin_sub_overflow(x, y, &r)) fail("integer overflow");
    return Value(r);
  }
  if (op == "*") {
    if (__builtin_mul_overflow(x, y, &r)) fail("integer overflow");
    return Value(r);
  }
  if (op == "**") {
    if (y < 0) return Value(std::pow(double(x), double(y)));
    return Value(checked_int64(std::pow(static_cast<long double>(x), static_cast<long double>(y))));
  }
  if (y == 0) fail("integer division or modulo by zero");
  if (x == std::numeric_limits<int64_t>::min() && y == -1) fail("integer overflow");
  int64_t q = x / y, m = x % y;
  if (m != 0 && ((m < 0) != (y < 0))) {  // Python floors
    --q;
    m += y;
  }
  return op == "//" ? Value(q) : Value(m);
}

Value repeat(const Value& seq, int64_t n) {
  if (n <= 0) return seq.is_string() ? Value(std::string()) : Value(ValueList{});
  if (seq.is_string()) {
    check_size(seq.as_string().size() * size_t(std::min<int64_t>(n, int64_t(max_string_bytes) + 1)));
    std::string out;
    for (int64_t i = 0; i < n; ++i) out += seq.as_string();
    return Value(std::move(out));
  }
  if (seq.as_list().size() * size_t(std::min<int64_t>(n, int64_t(max_list_items) + 1)) > max_list_items)
    fail("list longer than {} items", max_list_items);
  ValueList out;
  for (int64_t i = 0; i < n; ++i) out.insert(out.end(), seq.as_list().begin(), seq.as_list().end());
  return Value(std::move(out));
}

bool contains(const Value& container, const Value& item) {
  if (container.is_undefined()) return false;
  if (container.is_string()) {
    if (!item.is_string()) fail("'in <string>' requires string as left operand, not {}", item.type_name());
    return container.as_string().find(item.as_string()) != std::string::npos;
  }
  if (container.is_list()) {
    for (const Value& v : container.as_list())
      if (equals(v, item)) return true;
    return false;
  }
  if (container.is_dict()) return item.is_string() && container.as_dict().find(item.as_string()) != nullptr;
  fail("argument of type '{}' is not iterable", container.type_name());
}

}  // namespace

bool is_test(std::string_view name) {
  return std::find(std::begin(test_names), std::end(test_names), name) != std::end(test_names);
}
bool is_global_function(std::string_view name) {
  return std::find(std::begin(function_names), std::end(function_names), name) != std::end(function_names);
}

ValueList iterate(const Value& v) {
  if (v.is_undefined()) return {};
  if (v.is_list()) return v.as_list();
  if (v.is_string()) {
    ValueList out;
    for (auto& c : py::chars(v.as_string())) out.emplace_back(std::move(c));
    return out;
  }
  if (v.is_dict()) {
    ValueList out;
    for (const auto& [k, val] : v.as_dict().entries) out.emplace_back(k);
    return out;
  }
  fail("'{}' object is not iterable", v.type_name());
}

Value get_attribute(const Value& object, std::string_view name) {
  check_defined(object);
  if (object.is_dict()) {
    if (const Value* v = object.as_dict().find(name)) return *v;
    return Value::undefined(fmt::format("'dict object' has no attribute '{}'", name));
  }
  if (object.is_namespace()) {
    if (const Value* v = object.as_namespace().attrs->find(name)) return *v;
    return Value::undefined(fmt::format("'Namespace' object has no attribute '{}'", name));
  }
  return Value::undefined(fmt::format("'{}' object has no attribute '{}'", object.type_name(), name));
}

Value get_item(const Value& object, const Value& key) {
  check_defined(object);
  if (object.is_dict() || object.is_namespace()) {
    if (key.is_string()) return get_attribute(object, key.as_string());
    return Value::undefined(fmt::format("'{}' object has no element {}", object.type_name(), key.repr()));
  }
  if ((object.is_list() || object.is_string()) && (key.is_int() || key.is_bool())) {
    int64_t i = key.as_int();
    if (object.is_list()) {
      auto n = int64_t(object.as_list().size());
      if (i < 0) i += n;
      if (i < 0 || i >= n) return Value::undefined(fmt::format("list object has no element {}", key.as_int()));
      return object.as_list()[size_t(i)];
    }
    std::vector<std::string> cs = py::chars(object.as_string());
    auto n = int64_t(cs.size());
    if (i < 0) i += n;
    if (i < 0 || i >= n) return Value::undefined(fmt::format("str object has no element {}", key.as_int()));
    return Value(cs[size_t(i)]);
  }
  if (key.is_string()) return get_attribute(object, key.as_string());
  return Value::undefined(fmt::format("'{}' object has no element {}", object.type_name(), key.repr()));
}

Value get_slice(const Value& object, const Value& start_v, const Value& stop_v, const Value& step_v) {
  check_defined(object);
  auto opt_int = [](const Value& v) -> std::optional<int64_t> {
    if (v.is_undefined() || v.is_none()) return std::nullopt;
    return need_int(v, "slice index");
  };
  int64_t step = opt_int(step_v).value_or(1);
  if (step == 0) fail("slice step cannot be zero");
  std::vector<Value> items;
  std::vector<std::string> cs;
  if (object.is_list()) {
    items = object.as_list();
  } else if (object.is_string()) {
    cs = py::chars(object.as_string());
  } else {
    fail("'{}' object is not subscriptable", object.type_name());
  }
  auto n = int64_t(object.is_list() ? items.size() : cs.size());
  auto adjust = [&](std::optional<int64_t> v, int64_t fallback) {
    if (!v) return fallback;
    int64_t x = *v;
    if (x < 0) {
      x += n;
      if (x < 0) x = step < 0 ? -1 : 0;
    } else if (x >= n) {
      x = step < 0 ? n - 1 : n;
    }
    return x;
  };
  int64_t start = adjust(opt_int(start_v), step < 0 ? n - 1 : 0);
  int64_t stop = adjust(opt_int(stop_v), step < 0 ? -1 : n);
  if (object.is_list()) {
    ValueList out;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) out.push_back(items[size_t(i)]);
    return Value(std::move(out));
  }
  std::string out;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) out += cs[size_t(i)];
  return Value(std::move(out));
}

Value binary_operator(std::string_view op, const Value& a, const Value& b) {
  if (op == "==") return Value(equals(a, b));
  if (op == "!=") return Value(!equals(a, b));
  if (op == "in") return Value(contains(b, a));
  if (op == "not in") return Value(!contains(b, a));
  if (op == "~") {
    std::string s = a.to_str();
    s += b.to_str();
    check_size(s.size());
    return Value(std::move(s));
  }
  check_defined(a);
  check_defined(b);
  if (op == "<") return Value(less_than(a, b));
  if (op == ">") return Value(less_than(b, a));
  if (op == "<=") return Value(!less_than(b, a));
  if (op == ">=") return Value(!less_than(a, b));
  if (op == "+") {
    if (a.is_string() && b.is_string()) {
      check_size(a.as_string().size() + b.as_string().size());
      return Value(a.as_string() + b.as_string());
    }
    if (a.is_string()) fail("can only concatenate str (not \"{}\") to str", b.type_name());
    if (a.is_list() && b.is_list()) {
      if (a.as_list().size() + b.as_list().size() > max_list_items) fail("list longer than {} items", max_list_items);
      ValueList out = a.as_list();
      out.insert(out.end(), b.as_list().begin(), b.as_list().end());
      return Value(std::move(out));
    }
    if (a.is_list()) fail("can only concatenate list (not \"{}\") to list", b.type_name());
    return arithmetic(op, a, b);
  }
  if (op == "*") {
    if ((a.is_string() || a.is_list()) && (b.is_int() || b.is_bool())) return repeat(a, b.as_int());
    if ((b.is_string() || b.is_list()) && (a.is_int() || a.is_bool())) return repeat(b, a.as_int());
    return arithmetic(op, a, b);
  }
  if (op == "%" && a.is_string()) fail("printf-style formatting with '%' is not supported");
  return arithmetic(op, a, b);
}

bool apply_test(std::string_view name, const Value& v, const Args& args) {
  auto other = [&]() -> const Value& {
    if (args.empty()) fail("test '{}' needs an argument", name);
    return args[0];
  };
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.is_bool();
  if (name == "true") return v.is_bool() && v.as_bool();
  if (name == "false") return v.is_bool() && !v.as_bool();
  if (name == "integer") return v.is_int();
  if (name == "float") return v.is_float();
  if (name == "number") return v.is_number();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_dict();
  if (name == "iterable") return v.is_list() || v.is_string() || v.is_dict() || v.is_undefined();
  if (name == "sequence") return v.is_list() || v.is_string() || v.is_dict() || v.is_undefined();
  if (name == "callable") return v.is_function();
  if (name == "escaped") return false;
  if (name == "odd" || name == "even") {
    int64_t i = need_int(v, name);
    return ((i % 2) != 0) == (name == "odd");
  }
  if (name == "divisibleby") {
    int64_t d = need_int(other(), name);
    if (d == 0) fail("integer division or modulo by zero");
    return need_int(v, name) % d == 0;
  }
  if (name == "lower") return v.is_string() && py::is_class(v.as_string(), "islower");
  if (name == "upper") return v.is_string() && py::is_class(v.as_string(), "isupper");
  if (name == "eq" || name == "equalto") return equals(v, other());
  if (name == "ne") return !equals(v, other());
  if (name == "lt" || name == "lessthan") return less_than(v, other());
  if (name == "gt" || name == "greaterthan") return less_than(other(), v);
  if (name == "le") return !less_than(other(), v);
  if (name == "ge") return !less_than(v, other());
  if (name == "in") return contains(other(), v);
  if (name == "sameas") {
    const Value& o = other();
    if (v.is_none() || o.is_none()) return v.is_none() && o.is_none();
    if (v.is_bool() || o.is_bool()) return v.is_bool() && o.is_bool() && v.as_bool() == o.as_bool();
    return equals(v, o) && v.type_name() == o.type_name();
  }
  fail("no test named '{}'", name);
}

namespace {

Value string_method(const std::string& s, std::string_view name, const Args& args, const Kwargs& kwargs) {
  if (name == "split" || name == "rsplit") {
    check_arity(name, args, kwargs, 2, {"sep", "maxsplit"});
    auto sep = optional_string(arg(args, kwargs, 0, "sep"), name);
    int64_t maxsplit = need_int(arg(args, kwargs, 1, "maxsplit").value_or(Value(int64_t(-1))), name);
    return make_list(name == "split" ? py::split(s, sep, maxsplit) : py::rsplit(s, sep, maxsplit));
  }
  if (name == "splitlines") return make_list(py::splitlines(s, arg(args, kwargs, 0, "keepends").value_or(Value(false)).truthy()));
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    check_arity(name, args, kwargs, 1, {});
    auto chars = optional_string(arg(args, kwargs, 0, "chars"), name);
    return Value(py::strip(s, chars, name != "rstrip", name != "lstrip"));
  }
  if (name == "startswith" || name == "endswith") {
    if (args.empty()) fail("{}() takes at least 1 argument", name);
    std::vector<std::string> candidates;
    if (args[0].is_list()) {
      for (const Value& v : args[0].as_list()) candidates.push_back(need_string(v, name));
    } else {
      candidates.push_back(need_string(args[0], name));
    }
    for (const std::string& c : candidates) {
      bool hit = name == "startswith" ? s.compare(0, c.size(), c) == 0
                                      : s.size() >= c.size() && s.compare(s.size() - c.size(), c.size(), c) == 0;
      if (hit) return Value(true);
    }
    return Value(false);
  }
  if (name == "upper") return Value(py::upper(s));
  if (name == "lower") return Value(py::lower(s));
  if (name == "title") return Value(py::title(s));
  if (name == "capitalize") return Value(py::capitalize(s));
  if (name == "replace") {
    if (args.size() < 2) fail("replace() takes at least 2 arguments");
    int64_t count = args.size() > 2 ? need_int(args[2], "replace") : -1;
    std::string out = py::replace(s, need_string(args[0], "replace"), need_string(args[1], "replace"), count);
    check_size(out.size());
    return Value(std::move(out));
  }
  if (name == "find" || name == "rfind" || name == "count") {
    if (args.empty()) fail("{}() takes at least 1 argument", name);
    const std::string& sub = need_string(args[0], name);
    return Value(name == "count" ? py::count(s, sub) : py::find(s, sub, name == "rfind"));
  }
  if (name == "join") {
    if (args.size() != 1) fail("join() takes exactly one argument");
    std::string out;
    bool first = true;
    for (const Value& item : iterate(args[0])) {
      if (!first) out += s;
      first = false;
      out += need_string(item, "join");
      check_size(out.size());
    }
    return Value(std::move(out));
  }
  if (name == "isdigit" || name == "isalpha" || name == "isalnum" || name == "isspace" || name == "islower" ||
      name == "isupper")
    return Value(py::is_class(s, name));
  fail("'str' object has no method '{}' (supported: split, rsplit, splitlines, strip, lstrip, rstrip, "
       "startswith, endswith, upper, lower, title, capitalize, replace, find, rfind, count, join, is*)", name);
}

Value dict_method(const ValueDict& d, std::string_view name, const Args& args) {
  if (name == "items") {
    ValueList out;
    for (const auto& [k, v] : d.entries) out.push_back(Value::tuple({Value(k), v}));
    return Value(std::move(out));
  }
  if (name == "keys" || name == "values") {
    ValueList out;
    for (const auto& [k, v] : d.entries) out.push_back(name == "keys" ? Value(k) : v);
    return Value(std::move(out));
  }
  if (name == "get") {
    if (args.empty()) fail("get() takes at least 1 argument");
    if (args[0].is_string())
      if (const Value* v = d.find(args[0].as_string())) return *v;
    return args.size() > 1 ? args[1] : Value::none();
  }
  fail("'dict' object has no method '{}' (supported: items, keys, values, get)", name);
}

}  // namespace

Value call_method(const Value& object, std::string_view name, const Args& args, const Kwargs& kwargs) {
  check_defined(object);
  if (object.is_string()) return string_method(object.as_string(), name, args, kwargs);
  if (object.is_dict()) return dict_method(object.as_dict(), name, args);
  fail("'{}' object has no method '{}'", object.type_name(), name);
}

Value call_function(std::string_view name, const Args& args, const Kwargs& kwargs) {
  if (name == "raise_exception") {
    std::string message = args.empty() ? std::string() : args[0].to_str();
    fail("template raised an exception: {}", message);
  }
  if (name == "namespace" || name == "dict") {
    ValueDict d;
    for (const Value& a : args) {
      if (!a.is_dict()) fail("{}() positional arguments must be mappings", name);
      for (const auto& [k, v] : a.as_dict().entries) d.set(k, v);
    }
    for (const auto& [k, v] : kwargs) d.set(k, v);
    if (name == "dict") return Value(std::move(d));
    for (const auto& [k, v] : d.entries)
      if (v.holds_namespace()) fail("a namespace attribute cannot hold a namespace");
    return Value(Namespace{std::make_shared<ValueDict>(std::move(d))});
  }
  if (name == "range") {
    if (args.empty() || args.size() > 3 || !kwargs.empty()) fail("range() takes 1 to 3 integer arguments");
    int64_t start = 0, stop = 0, step = 1;
    if (args.size() == 1) {
      stop = need_int(args[0], "range");
    } else {
      start = need_int(args[0], "range");
      stop = need_int(args[1], "range");
      if (args.size() == 3) step = need_int(args[2], "range");
    }
    if (step == 0) fail("range() arg 3 must not be zero");
    long double n = step > 0 ? std::ceil((static_cast<long double>(stop) - start) / step)
                              : std::ceil((static_cast<long double>(start) - stop) / -static_cast<long double>(step));
    if (n > max_range_length) fail("range() of more than {} items", max_range_length);
    ValueList out;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) out.emplace_back(i);
    return Value(std::move(out));
  }
  if (name == "strftime_now") {
    std::string format = args.empty() ? std::string("%Y-%m-%d") : need_string(args[0], "strftime_now");
    std::time_t now = std::time(nullptr);
    std::tm local{};
    localtime_r(&now, &local);
    char buf[512];
    size_t n = std::strftime(buf, sizeof buf, format.c_str(), &local);
    return Value(std::string(buf, n));
  }
  fail("'{}' is not a function", name);
}

}  // namespace dsi::jinja
