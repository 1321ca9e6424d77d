#include "tokenizer/jinja_parser.h"

#include <algorithm>
#include <charconv>
#include <initializer_list>

#include "core/error.h"
#include "tokenizer/jinja_builtins.h"

namespace dsi::jinja {
namespace {

// Deeper nesting than this is not a chat template; the limit keeps the recursion bounded.
constexpr int max_depth = 200;

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  Body parse_template() {
    Body body = parse_body({});
    if (peek().type != TokenType::eof) {
      next();  // block_begin
      error("unexpected '" + peek().value + "'");
    }
    return body;
  }

 private:
  const Token& peek(size_t ahead = 0) const { return tokens_[std::min(pos_ + ahead, tokens_.size() - 1)]; }
  const Token& next() {
    const Token& t = peek();
    if (pos_ < tokens_.size() - 1) ++pos_;
    return t;
  }
  [[noreturn]] void error(const std::string& message) const { fail("line {}: {}", peek().line, message); }

  bool at_op(std::string_view op) const { return peek().type == TokenType::op && peek().value == op; }
  bool at_name(std::string_view name) const { return peek().type == TokenType::name && peek().value == name; }
  void expect_op(std::string_view op) {
    if (!at_op(op)) error(fmt::format("expected '{}', got {}", op, describe(peek())));
    next();
  }
  void expect_name(std::string_view name) {
    if (!at_name(name)) error(fmt::format("expected '{}', got {}", name, describe(peek())));
    next();
  }
  std::string expect_identifier() {
    if (peek().type != TokenType::name) error("expected a name, got " + describe(peek()));
    return next().value;
  }
  void expect_block_end() {
    if (peek().type != TokenType::block_end) error("expected '%}', got " + describe(peek()));
    next();
  }
  static std::string describe(const Token& t) {
    switch (t.type) {
      case TokenType::eof: return "end of template";
      case TokenType::block_end: return "'%}'";
      case TokenType::var_end: return "'}}'";
      case TokenType::text: return "text";
      default: return "'" + t.value + "'";
    }
  }

  // Statements until a block tag whose keyword is in `ends` (left unconsumed) or the end.
  Body parse_body(std::initializer_list<std::string_view> ends) {
    Body body;
    while (true) {
      const Token& t = peek();
      if (t.type == TokenType::eof) return body;
      if (t.type == TokenType::text) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::text;
        s->line = t.line;
        s->text = t.value;
        next();
        body.push_back(std::move(s));
      } else if (t.type == TokenType::var_begin) {
        next();
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::output;
        s->line = t.line;
        s->expr = parse_tuple_or_expression();
        if (peek().type != TokenType::var_end) error("expected '}}', got " + describe(peek()));
        next();
        body.push_back(std::move(s));
      } else if (t.type == TokenType::block_begin) {
        const Token& keyword = peek(1);
        if (keyword.type == TokenType::name &&
            std::find(ends.begin(), ends.end(), keyword.value) != ends.end())
          return body;
        next();
        body.push_back(parse_statement());
      } else {
        error("unexpected " + describe(t));
      }
    }
  }

  // Consumes `{% keyword` of an expected closing tag.
  std::string expect_end_tag(std::initializer_list<std::string_view> names, std::string_view opened, int line) {
    if (peek().type != TokenType::block_begin)
      fail("line {}: '{}' is never closed (expected {})", line, opened, *names.begin());
    next();
    return next().value;
  }

  std::unique_ptr<Stmt> parse_statement() {
    if (++depth_ > max_depth) error("template nested too deeply");
    int line = peek().line;
    if (peek().type != TokenType::name) error("expected a statement keyword, got " + describe(peek()));
    std::string keyword = next().value;
    auto s = std::make_unique<Stmt>();
    s->line = line;
    if (keyword == "if") {
      parse_if(*s);
    } else if (keyword == "for") {
      parse_for(*s);
    } else if (keyword == "set") {
      parse_set(*s);
    } else if (keyword == "break" || keyword == "continue") {
      if (loop_depth_ == 0) error("'" + keyword + "' outside a loop");
      s->kind = keyword == "break" ? Stmt::Kind::break_ : Stmt::Kind::continue_;
      expect_block_end();
    } else if (keyword == "generation") {
      s->kind = Stmt::Kind::block;
      expect_block_end();
      s->body = parse_body({"endgeneration"});
      expect_end_tag({"endgeneration"}, "generation", line);
      expect_block_end();
    } else if (keyword == "elif" || keyword == "else" || keyword.rfind("end", 0) == 0) {
      fail("line {}: unexpected '{}'", line, keyword);
    } else {
      fail("line {}: unsupported tag '{}' (chat templates support if, for, set, break, continue, raw, "
           "generation)", line, keyword);
    }
    --depth_;
    return s;
  }

  // {% if c %} ... {% elif c %} ... {% else %} ... {% endif %}
  void parse_if(Stmt& s) {
    s.kind = Stmt::Kind::if_;
    ExprPtr cond = parse_expression();
    expect_block_end();
    Body body = parse_body({"elif", "else", "endif"});
    s.branches.emplace_back(std::move(cond), std::move(body));
    while (true) {
      std::string end = expect_end_tag({"endif"}, "if", s.line);
      if (end == "elif") {
        ExprPtr c = parse_expression();
        expect_block_end();
        Body b = parse_body({"elif", "else", "endif"});
        s.branches.emplace_back(std::move(c), std::move(b));
        continue;
      }
      expect_block_end();
      if (end == "else") {
        s.else_body = parse_body({"endif"});
        expect_end_tag({"endif"}, "if", s.line);
        expect_block_end();
      }
      return;
    }
  }

  // {% for a[, b] in xs [if c] %} ... [{% else %} ...] {% endfor %}
  void parse_for(Stmt& s) {
    s.kind = Stmt::Kind::for_;
    bool paren = at_op("(");
    if (paren) next();
    s.targets.push_back(expect_identifier());
    while (at_op(",")) {
      next();
      s.targets.push_back(expect_identifier());
    }
    if (paren) expect_op(")");
    expect_name("in");
    s.expr = parse_tuple_or_expression(/*allow_conditional=*/false);
    if (at_name("if")) {
      next();
      s.filter = parse_expression();
    }
    if (at_name("recursive")) error("recursive loops are not supported");
    expect_block_end();
    ++loop_depth_;
    s.body = parse_body({"else", "endfor"});
    --loop_depth_;
    std::string end = expect_end_tag({"endfor"}, "for", s.line);
    expect_block_end();
    if (end == "else") {
      s.else_body = parse_body({"endfor"});
      expect_end_tag({"endfor"}, "for", s.line);
      expect_block_end();
    }
  }

  // {% set x = e %}, {% set ns.attr = e %}, {% set x %} ... {% endset %}
  void parse_set(Stmt& s) {
    s.targets.push_back(expect_identifier());
    if (at_op(".")) {
      next();
      s.attr = expect_identifier();
    }
    if (at_op(",")) error("tuple assignment in 'set' is not supported");
    if (at_op("=")) {
      next();
      s.kind = Stmt::Kind::set;
      s.expr = parse_tuple_or_expression();
      expect_block_end();
      return;
    }
    if (!s.attr.empty()) error("a block 'set' needs a plain name");
    s.kind = Stmt::Kind::set_block;
    expect_block_end();
    s.body = parse_body({"endset"});
    expect_end_tag({"endset"}, "set", s.line);
    expect_block_end();
  }

  ExprPtr make(Expr::Kind kind, int line, std::string name = "") {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line;
    e->name = std::move(name);
    return e;
  }

  ExprPtr binary(std::string op, ExprPtr a, ExprPtr b, int line) {
    auto e = make(Expr::Kind::binary, line, std::move(op));
    e->args.push_back(std::move(a));
    e->args.push_back(std::move(b));
    return e;
  }

  struct DepthGuard {
    Parser& p;
    explicit DepthGuard(Parser& parser) : p(parser) {
      if (++p.depth_ > max_depth) p.error("expression nested too deeply");
    }
    ~DepthGuard() { --p.depth_; }
  };

  // `a, b` without brackets is a tuple where jinja2 allows it ({{ }}, set, for ... in).
  ExprPtr parse_tuple_or_expression(bool allow_conditional = true) {
    int line = peek().line;
    ExprPtr first = parse_expression(allow_conditional);
    if (!at_op(",")) return first;
    auto list = make(Expr::Kind::list, line, "tuple");
    list->args.push_back(std::move(first));
    while (at_op(",")) {
      next();
      if (peek().type == TokenType::var_end || peek().type == TokenType::block_end) break;
      list->args.push_back(parse_expression(allow_conditional));
    }
    return list;
  }

  ExprPtr parse_expression(bool allow_conditional = true) {
    DepthGuard guard(*this);
    int line = peek().line;
    ExprPtr e = parse_or();
    while (allow_conditional && at_name("if")) {
      next();
      auto c = make(Expr::Kind::conditional, line);
      c->args.push_back(std::move(e));
      c->args.push_back(parse_or());
      if (at_name("else")) {
        next();
        c->args.push_back(parse_expression());
      } else {
        c->args.push_back(nullptr);
      }
      e = std::move(c);
    }
    return e;
  }

  ExprPtr parse_or() {
    ExprPtr e = parse_and();
    while (at_name("or")) {
      int line = next().line;
      e = binary("or", std::move(e), parse_and(), line);
    }
    return e;
  }

  ExprPtr parse_and() {
    ExprPtr e = parse_not();
    while (at_name("and")) {
      int line = next().line;
      e = binary("and", std::move(e), parse_not(), line);
    }
    return e;
  }

  ExprPtr parse_not() {
    if (at_name("not")) {
      DepthGuard guard(*this);
      int line = next().line;
      auto e = make(Expr::Kind::unary, line, "not");
      e->args.push_back(parse_not());
      return e;
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    int line = peek().line;
    ExprPtr left = parse_math1();
    ExprPtr result;
    // a < b < c means a < b and b < c; the middle operand is evaluated again (it is pure).
    while (true) {
      std::string op;
      if (peek().type == TokenType::op &&
          (peek().value == "==" || peek().value == "!=" || peek().value == "<" || peek().value == ">" ||
           peek().value == "<=" || peek().value == ">=")) {
        op = next().value;
      } else if (at_name("in")) {
        next();
        op = "in";
      } else if (at_name("not") && peek(1).type == TokenType::name && peek(1).value == "in") {
        next();
        next();
        op = "not in";
      } else {
        break;
      }
      ExprPtr right = parse_math1();
      ExprPtr next_left = clone(*right);
      ExprPtr cmp = binary(op, std::move(left), std::move(right), line);
      result = result ? binary("and", std::move(result), std::move(cmp), line) : std::move(cmp);
      left = std::move(next_left);
    }
    return result ? std::move(result) : std::move(left);
  }

  static ExprPtr clone(const Expr& e) {
    auto c = std::make_unique<Expr>();
    c->kind = e.kind;
    c->line = e.line;
    c->name = e.name;
    c->value = e.value;
    c->negated = e.negated;
    for (const auto& a : e.args) c->args.push_back(a ? clone(*a) : nullptr);
    for (const auto& [k, v] : e.kwargs) c->kwargs.emplace_back(k, clone(*v));
    return c;
  }

  ExprPtr parse_math1() {
    ExprPtr e = parse_concat();
    while (at_op("+") || at_op("-")) {
      const Token& t = next();
      std::string op = t.value;
      e = binary(op, std::move(e), parse_concat(), t.line);
    }
    return e;
  }

  ExprPtr parse_concat() {
    ExprPtr e = parse_math2();
    while (at_op("~")) {
      int line = next().line;
      e = binary("~", std::move(e), parse_math2(), line);
    }
    return e;
  }

  ExprPtr parse_math2() {
    ExprPtr e = parse_pow();
    while (at_op("*") || at_op("/") || at_op("//") || at_op("%")) {
      const Token& t = next();
      std::string op = t.value;
      e = binary(op, std::move(e), parse_pow(), t.line);
    }
    return e;
  }

  ExprPtr parse_pow() {
    ExprPtr e = parse_unary(true);
    while (at_op("**")) {
      int line = next().line;
      e = binary("**", std::move(e), parse_unary(true), line);
    }
    return e;
  }

  ExprPtr parse_unary(bool with_filter) {
    DepthGuard guard(*this);
    int line = peek().line;
    ExprPtr node;
    if (at_op("-") || at_op("+")) {
      std::string op = next().value;
      node = make(Expr::Kind::unary, line, op);
      node->args.push_back(parse_unary(false));
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  ExprPtr parse_primary() {
    const Token& t = peek();
    int line = t.line;
    if (t.type == TokenType::name) {
      std::string name = next().value;
      if (name == "true" || name == "True") return literal(Value(true), line);
      if (name == "false" || name == "False") return literal(Value(false), line);
      if (name == "none" || name == "None") return literal(Value::none(), line);
      return make(Expr::Kind::name, line, name);
    }
    if (t.type == TokenType::string) {
      std::string s = next().value;
      while (peek().type == TokenType::string) s += next().value;
      return literal(Value(std::move(s)), line);
    }
    if (t.type == TokenType::integer) {
      std::string digits = next().value;
      int64_t v = 0;
      auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
      if (ec != std::errc() || p != digits.data() + digits.size()) fail("line {}: integer {} out of range", line, digits);
      return literal(Value(v), line);
    }
    if (t.type == TokenType::floating) {
      std::string digits = next().value;
      double v = 0;
      auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
      if (ec != std::errc() && ec != std::errc::result_out_of_range) fail("line {}: bad number {}", line, digits);
      return literal(Value(v), line);
    }
    if (at_op("(")) return parse_parenthesized(line);
    if (at_op("[")) return parse_list_literal(line);
    if (at_op("{")) return parse_dict_literal(line);
    error("unexpected " + describe(t));
  }

  // ( ), (e), (a, b, ...)
  ExprPtr parse_parenthesized(int line) {
    next();
    if (at_op(")")) {
      next();
      return make(Expr::Kind::list, line, "tuple");
    }
    ExprPtr e = parse_expression();
    if (at_op(",")) {
      auto list = make(Expr::Kind::list, line, "tuple");
      list->args.push_back(std::move(e));
      while (at_op(",")) {
        next();
        if (at_op(")")) break;
        list->args.push_back(parse_expression());
      }
      e = std::move(list);
    }
    expect_op(")");
    return e;
  }

  // [a, b, ...]
  ExprPtr parse_list_literal(int line) {
    next();
    auto list = make(Expr::Kind::list, line);
    while (!at_op("]")) {
      list->args.push_back(parse_expression());
      if (!at_op(",")) break;
      next();
    }
    expect_op("]");
    return list;
  }

  // {k: v, ...}
  ExprPtr parse_dict_literal(int line) {
    next();
    auto dict = make(Expr::Kind::dict, line);
    while (!at_op("}")) {
      dict->args.push_back(parse_expression());
      expect_op(":");
      dict->args.push_back(parse_expression());
      if (!at_op(",")) break;
      next();
    }
    expect_op("}");
    return dict;
  }

  ExprPtr literal(Value v, int line) {
    auto e = make(Expr::Kind::literal, line);
    e->value = std::move(v);
    return e;
  }

  ExprPtr parse_postfix(ExprPtr node) {
    while (true) {
      int line = peek().line;
      if (at_op(".")) {
        next();
        if (peek().type == TokenType::integer) {
          auto e = make(Expr::Kind::subscript, line);
          e->args.push_back(std::move(node));
          e->args.push_back(parse_primary());
          node = std::move(e);
        } else {
          auto e = make(Expr::Kind::attribute, line, expect_identifier());
          e->args.push_back(std::move(node));
          node = std::move(e);
        }
      } else if (at_op("[")) {
        next();
        node = parse_subscript(std::move(node), line);
      } else if (at_op("(")) {
        node = parse_call(std::move(node), line);
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr node, int line) {
    ExprPtr parts[3];
    bool is_slice = false;
    for (int i = 0; i < 3; ++i) {
      if (!at_op(":") && !at_op("]")) parts[i] = parse_expression();
      if (at_op(":") && i < 2) {
        next();
        is_slice = true;
      } else {
        break;
      }
    }
    expect_op("]");
    if (!is_slice) {
      if (!parts[0]) error("empty subscript");
      auto e = make(Expr::Kind::subscript, line);
      e->args.push_back(std::move(node));
      e->args.push_back(std::move(parts[0]));
      return e;
    }
    auto e = make(Expr::Kind::slice, line);
    e->args.push_back(std::move(node));
    for (auto& p : parts) e->args.push_back(std::move(p));
    return e;
  }

  // Arguments "(a, b, key=c)" into e->args (after what is already there) and e->kwargs.
  void parse_arguments(Expr& e) {
    expect_op("(");
    while (!at_op(")")) {
      if (at_op("*") || at_op("**")) error("*args and **kwargs are not supported");
      if (peek().type == TokenType::name && peek(1).type == TokenType::op && peek(1).value == "=") {
        std::string key = next().value;
        next();
        e.kwargs.emplace_back(key, parse_expression());
      } else {
        if (!e.kwargs.empty()) error("positional argument after keyword argument");
        e.args.push_back(parse_expression());
      }
      if (!at_op(",")) break;
      next();
    }
    expect_op(")");
  }

  ExprPtr parse_call(ExprPtr callee, int line) {
    auto e = make(Expr::Kind::call, line);
    e->args.push_back(std::move(callee));
    parse_arguments(*e);
    return e;
  }

  ExprPtr parse_filter_expr(ExprPtr node) {
    while (true) {
      int line = peek().line;
      if (at_op("|")) {
        next();
        std::string name = expect_identifier();
        if (!is_filter(name)) fail("line {}: no filter named '{}'", line, name);
        auto e = make(Expr::Kind::filter, line, name);
        e->args.push_back(std::move(node));
        if (at_op("(")) parse_arguments(*e);
        node = std::move(e);
      } else if (at_name("is")) {
        next();
        bool negated = false;
        if (at_name("not")) {
          next();
          negated = true;
        }
        std::string name = expect_identifier();
        if (!is_test(name)) fail("line {}: no test named '{}'", line, name);
        auto e = make(Expr::Kind::test, line, name);
        e->negated = negated;
        e->args.push_back(std::move(node));
        const Token& t = peek();
        if (at_op("(")) {
          parse_arguments(*e);
        } else if ((t.type == TokenType::name || t.type == TokenType::string || t.type == TokenType::integer ||
                    t.type == TokenType::floating || at_op("[") || at_op("{")) &&
                   !(at_name("else") || at_name("or") || at_name("and") || at_name("if") || at_name("in") ||
                     at_name("not"))) {
          ExprPtr arg = parse_postfix(parse_primary());
          e->args.push_back(std::move(arg));
        }
        node = std::move(e);
      } else if (at_op("(")) {
        node = parse_call(std::move(node), line);
      } else {
        return node;
      }
    }
  }

  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

Body parse(std::string_view source, const LexOptions& options) {
  return Parser(lex(source, options)).parse_template();
}

}  // namespace dsi::jinja
