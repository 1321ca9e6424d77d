#pragma once
// Values of the Jinja subset that chat templates use, with Python's semantics (what jinja2
// computes): truthiness, equality, ordering, str() and repr() spellings, JSON dumps.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace dsi::jinja {

class Value;
using ValueList = std::vector<Value>;

// A Python dict with string keys, in insertion order.
struct ValueDict {
  std::vector<std::pair<std::string, Value>> entries;
  const Value* find(std::string_view key) const;
  void set(std::string key, Value value);
};

struct Undefined {
  std::string hint;  // why it is undefined, for error messages: "'x' is undefined"
};
struct None {};
// A namespace() object: the one mutable value (`set ns.attr = ...`); shared by reference.
struct Namespace {
  std::shared_ptr<ValueDict> attrs;
};
// A global function (raise_exception, namespace, range, ...), called by name.
struct Function {
  std::string name;
};

class Value {
 public:
  using Storage = std::variant<Undefined, None, bool, int64_t, double, std::string, std::shared_ptr<const ValueList>,
                               std::shared_ptr<const ValueDict>, Namespace, Function>;

  Value() : v_(Undefined{}) {}
  static Value undefined(std::string hint) {
    Value v;
    std::get<Undefined>(v.v_).hint = std::move(hint);
    return v;
  }
  static Value none() {
    Value v;
    v.v_.emplace<None>();
    return v;
  }
  Value(bool b) : v_(b) {}
  Value(int64_t i) : v_(i) {}
  Value(int i) : v_(int64_t(i)) {}
  Value(double d) : v_(d) {}
  Value(std::string s) : v_(std::move(s)) {}
  Value(const char* s) : v_(std::string(s)) {}
  // Containers record how deeply they nest; beyond max_depth is an Error (it keeps printing,
  // comparing and freeing values from recursing without bound).
  static constexpr int max_depth = 200;
  Value(ValueList list);
  // A Python tuple: a list that prints with parentheses and never equals a list.
  static Value tuple(ValueList items) {
    Value v(std::move(items));
    v.tuple_ = true;
    return v;
  }
  bool is_tuple() const { return tuple_; }
  Value(ValueDict dict);
  Value(Namespace ns) : v_(std::move(ns)) {}
  Value(Function f) : v_(std::move(f)) {}

  bool is_undefined() const { return std::holds_alternative<Undefined>(v_); }
  bool is_none() const { return std::holds_alternative<None>(v_); }
  bool is_bool() const { return std::holds_alternative<bool>(v_); }
  bool is_int() const { return std::holds_alternative<int64_t>(v_); }  // bool excluded
  bool is_float() const { return std::holds_alternative<double>(v_); }
  bool is_number() const { return is_int() || is_float() || is_bool(); }
  bool is_string() const { return std::holds_alternative<std::string>(v_); }
  bool is_list() const { return std::holds_alternative<std::shared_ptr<const ValueList>>(v_); }
  bool is_dict() const { return std::holds_alternative<std::shared_ptr<const ValueDict>>(v_); }
  bool is_namespace() const { return std::holds_alternative<Namespace>(v_); }
  bool is_function() const { return std::holds_alternative<Function>(v_); }

  bool as_bool() const { return std::get<bool>(v_); }
  int64_t as_int() const { return is_bool() ? int64_t(as_bool()) : std::get<int64_t>(v_); }
  double as_double() const { return is_float() ? std::get<double>(v_) : double(as_int()); }
  const std::string& as_string() const { return std::get<std::string>(v_); }
  const ValueList& as_list() const { return *std::get<std::shared_ptr<const ValueList>>(v_); }
  const ValueDict& as_dict() const { return *std::get<std::shared_ptr<const ValueDict>>(v_); }
  const Namespace& as_namespace() const { return std::get<Namespace>(v_); }
  const Function& as_function() const { return std::get<Function>(v_); }
  const std::string& undefined_hint() const { return std::get<Undefined>(v_).hint; }
  int depth() const { return depth_; }
  // Whether a namespace() object is inside (a namespace may not hold one: that could make a
  // reference cycle).
  bool holds_namespace() const;

  // Python's name of the type ("str", "int", "list", "dict", "NoneType", ...).
  std::string_view type_name() const;
  // Python truthiness (an undefined value is false).
  bool truthy() const;
  // str(x) as {{ x }} prints it: undefined prints nothing, None prints "None".
  std::string to_str() const;
  // repr(x): how Python writes it inside a list or dict.
  std::string repr() const;

 private:
  Storage v_;
  bool tuple_ = false;
  uint8_t depth_ = 0;
};

bool equals(const Value& a, const Value& b);
// a < b with Python's rules; an Error for incomparable types.
bool less_than(const Value& a, const Value& b);

// Python's repr of a float: the shortest digits that read back the same value, in fixed
// notation between 1e-4 and 1e16, else scientific ("1e+16").
std::string format_python_float(double d);

// json.dumps options (Python's defaults, but ensure_ascii off as transformers' tojson has it).
struct JsonStyle {
  int indent = -1;  // < 0: everything on one line
  bool sort_keys = false;
  bool ensure_ascii = false;
  std::string item_separator;  // empty: ", " without indent, "," with one
  std::string key_separator = ": ";
};
std::string to_json(const Value& v, const JsonStyle& style = {});

// Number of characters (code points) of a UTF-8 string, as Python's len().
size_t char_count(std::string_view s);

}  // namespace dsi::jinja
