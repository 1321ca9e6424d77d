#pragma once
// The filters, tests, methods (str, dict) and global functions chat templates call, with
// jinja2's (and Python's) behaviour; `tojson` follows Hugging Face transformers, which
// replaces jinja2's HTML-escaping version (no escaping, non-ASCII kept, optional indent).
// Errors are dsi::Error with the message only; the interpreter adds the line.
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/jinja_value.h"

namespace dsi::jinja {

using Args = std::vector<Value>;
using Kwargs = std::vector<std::pair<std::string, Value>>;

bool is_filter(std::string_view name);
bool is_test(std::string_view name);
bool is_global_function(std::string_view name);

Value apply_filter(std::string_view name, const Value& input, const Args& args, const Kwargs& kwargs);
bool apply_test(std::string_view name, const Value& input, const Args& args);
// obj.name(args): str and dict methods.
Value call_method(const Value& object, std::string_view name, const Args& args, const Kwargs& kwargs);
// name(args): raise_exception, namespace, range, dict, strftime_now.
Value call_function(std::string_view name, const Args& args, const Kwargs& kwargs);

// obj.name and obj[key] as jinja2 resolves them (a missing one is an undefined value).
Value get_attribute(const Value& object, std::string_view name);
Value get_item(const Value& object, const Value& key);
Value get_slice(const Value& object, const Value& start, const Value& stop, const Value& step);

// Python's binary operators (+ - * / // % ** ~, comparisons, in) on values.
Value binary_operator(std::string_view op, const Value& a, const Value& b);

// The items of a value a for loop walks (strings give characters, dicts their keys).
ValueList iterate(const Value& v);

// Length limits that keep a hostile template from exhausting memory.
inline constexpr size_t max_string_bytes = size_t(64) << 20;
inline constexpr size_t max_list_items = size_t(1) << 20;
inline constexpr int64_t max_range_length = 1'000'000;

}  // namespace dsi::jinja
