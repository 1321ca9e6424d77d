#include "tokenizer/jinja_template.h"

#include <unordered_map>

#include "core/error.h"
#include "tokenizer/jinja_builtins.h"
#include "tokenizer/jinja_parser.h"

namespace dsi::jinja {
namespace {

// Work a single render may do (statements run plus loop iterations); far beyond any chat.
constexpr int64_t max_steps = 5'000'000;

class Interpreter {
 public:
  explicit Interpreter(const ValueDict& globals) {
    frames_.emplace_back();
    for (const auto& [k, v] : globals.entries) frames_.back()[k] = v;
  }

  std::string run(const Body& body) {
    std::string out;
    try {
      exec(body, out);
    } catch (const Error& e) {
      std::string_view what = e.what();
      if (what.rfind("line ", 0) == 0) throw;
      fail("line {}: {}", line_, what);
    }
    return out;
  }

 private:
  enum class Flow { normal, break_loop, continue_loop };

  void step() {
    if (++steps_ > max_steps) fail("template ran more than {} steps", max_steps);
  }

  Value lookup(const std::string& name) const {
    for (size_t i = frames_.size(); i-- > 0;) {
      auto it = frames_[i].find(name);
      if (it != frames_[i].end()) return it->second;
    }
    if (is_global_function(name)) return Value(Function{name});
    return Value::undefined("'" + name + "' is undefined");
  }

  void append(std::string& out, std::string_view s) {
    out += s;
    if (out.size() > max_string_bytes) fail("template output larger than {} bytes", max_string_bytes);
  }

  Flow exec(const Body& body, std::string& out) {
    for (const auto& s : body) {
      step();
      line_ = s->line;
      switch (s->kind) {
        case Stmt::Kind::text: append(out, s->text); break;
        case Stmt::Kind::output: append(out, eval(*s->expr).to_str()); break;
        case Stmt::Kind::if_: {
          const Body* chosen = &s->else_body;
          for (const auto& [cond, branch] : s->branches) {
            if (eval(*cond).truthy()) {
              chosen = &branch;
              break;
            }
          }
          Flow f = exec(*chosen, out);
          if (f != Flow::normal) return f;
          break;
        }
        case Stmt::Kind::for_: exec_for(*s, out); break;
        case Stmt::Kind::set: {
          Value v = eval(*s->expr);
          if (s->attr.empty()) {
            frames_.back()[s->targets[0]] = std::move(v);
          } else {
            Value target = lookup(s->targets[0]);
            if (!target.is_namespace())
              fail("cannot assign attribute '{}' on '{}': only namespace() objects take attributes", s->attr,
                   s->targets[0]);
            if (v.holds_namespace()) fail("a namespace attribute cannot hold a namespace");
            target.as_namespace().attrs->set(s->attr, std::move(v));
          }
          break;
        }
        case Stmt::Kind::set_block: {
          std::string captured;
          frames_.emplace_back();
          exec(s->body, captured);
          frames_.pop_back();
          frames_.back()[s->targets[0]] = Value(std::move(captured));
          break;
        }
        case Stmt::Kind::break_: return Flow::break_loop;
        case Stmt::Kind::continue_: return Flow::continue_loop;
        case Stmt::Kind::block: {
          Flow f = exec(s->body, out);
          if (f != Flow::normal) return f;
          break;
        }
      }
    }
    return Flow::normal;
  }

  void exec_for(const Stmt& s, std::string& out) {
    ValueList items = iterate(eval(*s.expr));
    if (s.filter) {
      // `for x in xs if cond`: the condition sees the loop variables, and loop.* counts only
      // the items that pass.
      ValueList kept;
      for (const Value& item : items) {
        frames_.emplace_back();
        bind_targets(s, item);
        bool keep = eval(*s.filter).truthy();
        frames_.pop_back();
        if (keep) kept.push_back(item);
      }
      items = std::move(kept);
    }
    if (items.empty()) {
      exec(s.else_body, out);
      return;
    }
    auto n = int64_t(items.size());
    for (int64_t i = 0; i < n; ++i) {
      step();
      frames_.emplace_back();
      bind_targets(s, items[size_t(i)]);
      ValueDict loop;
      loop.set("index", Value(i + 1));
      loop.set("index0", Value(i));
      loop.set("revindex", Value(n - i));
      loop.set("revindex0", Value(n - i - 1));
      loop.set("first", Value(i == 0));
      loop.set("last", Value(i == n - 1));
      loop.set("length", Value(n));
      loop.set("depth", Value(int64_t(1)));
      loop.set("depth0", Value(int64_t(0)));
      loop.set("previtem", i > 0 ? items[size_t(i - 1)] : Value::undefined("there is no previous item"));
      loop.set("nextitem", i + 1 < n ? items[size_t(i + 1)] : Value::undefined("there is no next item"));
      frames_.back()["loop"] = Value(std::move(loop));
      Flow f = exec(s.body, out);
      frames_.pop_back();
      if (f == Flow::break_loop) break;
    }
  }

  void bind_targets(const Stmt& s, const Value& item) {
    if (s.targets.size() == 1) {
      frames_.back()[s.targets[0]] = item;
      return;
    }
    ValueList parts = iterate(item);
    if (parts.size() != s.targets.size())
      fail("cannot unpack {} values into {} loop variables", parts.size(), s.targets.size());
    for (size_t k = 0; k < parts.size(); ++k) frames_.back()[s.targets[k]] = parts[k];
  }

  void eval_args(const Expr& e, size_t first, Args& args, Kwargs& kwargs) {
    for (size_t i = first; i < e.args.size(); ++i) args.push_back(eval(*e.args[i]));
    for (const auto& [k, v] : e.kwargs) kwargs.emplace_back(k, eval(*v));
  }

  Value eval(const Expr& e) {
    if (++depth_ > 400) fail("expression nested too deeply");
    struct Guard {
      int& d;
      ~Guard() { --d; }
    } guard{depth_};
    line_ = e.line;
    switch (e.kind) {
      case Expr::Kind::literal: return e.value;
      case Expr::Kind::name: return lookup(e.name);
      case Expr::Kind::list: {
        ValueList items;
        for (const auto& a : e.args) items.push_back(eval(*a));
        return e.name == "tuple" ? Value::tuple(std::move(items)) : Value(std::move(items));
      }
      case Expr::Kind::dict: return eval_dict(e);
      case Expr::Kind::attribute: return get_attribute(eval(*e.args[0]), e.name);
      case Expr::Kind::subscript: {
        Value obj = eval(*e.args[0]);
        return get_item(obj, eval(*e.args[1]));
      }
      case Expr::Kind::slice: {
        Value obj = eval(*e.args[0]);
        auto part = [&](size_t i) { return e.args[i] ? eval(*e.args[i]) : Value::none(); };
        Value a = part(1), b = part(2), c = part(3);
        return get_slice(obj, a, b, c);
      }
      case Expr::Kind::call: return eval_call(e);
      case Expr::Kind::filter: {
        Value input = eval(*e.args[0]);
        Args args;
        Kwargs kwargs;
        eval_args(e, 1, args, kwargs);
        line_ = e.line;
        return apply_filter(e.name, input, args, kwargs);
      }
      case Expr::Kind::test: {
        Value input = eval(*e.args[0]);
        Args args;
        Kwargs kwargs;
        eval_args(e, 1, args, kwargs);
        line_ = e.line;
        return Value(apply_test(e.name, input, args) != e.negated);
      }
      case Expr::Kind::unary: return eval_unary(e);
      case Expr::Kind::binary: return eval_binary(e);
      case Expr::Kind::conditional: {
        if (eval(*e.args[1]).truthy()) return eval(*e.args[0]);
        if (e.args[2]) return eval(*e.args[2]);
        return Value::undefined("the conditional expression evaluated to false and had no else section");
      }
    }
    fail("unknown expression");
  }

  Value eval_dict(const Expr& e) {
    ValueDict d;
    for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
      Value k = eval(*e.args[i]);
      if (!k.is_string()) fail("dict keys must be strings, got {}", k.type_name());
      d.set(k.as_string(), eval(*e.args[i + 1]));
    }
    return Value(std::move(d));
  }

  Value eval_unary(const Expr& e) {
    Value v = eval(*e.args[0]);
    if (e.name == "not") return Value(!v.truthy());
    if (v.is_undefined()) fail("{}", v.undefined_hint());
    if (!v.is_number()) fail("bad operand type for unary {}: '{}'", e.name, v.type_name());
    if (e.name == "+") return v.is_float() ? v : Value(v.as_int());
    if (v.is_float()) return Value(-v.as_double());
    return binary_operator("-", Value(int64_t(0)), v);
  }

  // `and` / `or` return an operand and skip the right one when the left decides (Python).
  Value eval_binary(const Expr& e) {
    Value a = eval(*e.args[0]);
    if (e.name == "and") return a.truthy() ? eval(*e.args[1]) : a;
    if (e.name == "or") return a.truthy() ? a : eval(*e.args[1]);
    Value b = eval(*e.args[1]);
    line_ = e.line;
    return binary_operator(e.name, a, b);
  }

  Value eval_call(const Expr& e) {
    const Expr& callee = *e.args[0];
    Args args;
    Kwargs kwargs;
    if (callee.kind == Expr::Kind::attribute) {
      Value object = eval(*callee.args[0]);
      // A namespace or dict entry holding a function is called like one; anything else is a method.
      Value member = object.is_dict() || object.is_namespace() ? get_attribute(object, callee.name) : Value();
      eval_args(e, 1, args, kwargs);
      line_ = e.line;
      if (member.is_function()) return call_function(member.as_function().name, args, kwargs);
      return call_method(object, callee.name, args, kwargs);
    }
    Value f = eval(callee);
    eval_args(e, 1, args, kwargs);
    line_ = e.line;
    if (f.is_undefined()) fail("{}", f.undefined_hint());
    if (!f.is_function()) fail("'{}' object is not callable", f.type_name());
    return call_function(f.as_function().name, args, kwargs);
  }

  std::vector<std::unordered_map<std::string, Value>> frames_;
  int line_ = 0;
  int depth_ = 0;
  int64_t steps_ = 0;
};

}  // namespace

Template::Template(std::string_view source, const LexOptions& options) : body_(parse(source, options)) {}

std::string Template::render(const ValueDict& globals) const { return Interpreter(globals).run(body_); }

}  // namespace dsi::jinja
