// The chat-template interpreter on its own: the constructs DeepSeek templates use, jinja2's
// scoping, whitespace control, and clear errors (with line numbers) for everything else.
// (Differential runs against Python jinja2 are in diff_chat_templates.py.)
#include <gtest/gtest.h>

#include "core/error.h"
#include "tokenizer/jinja_template.h"

namespace dsi::jinja {
namespace {

std::string render(std::string_view source, ValueDict globals = {}) { return Template(source).render(globals); }

std::string error_of(std::string_view source, ValueDict globals = {}) {
  try {
    render(source, std::move(globals));
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

ValueDict vars(std::initializer_list<std::pair<std::string, Value>> items) {
  ValueDict d;
  for (const auto& [k, v] : items) d.set(k, v);
  return d;
}

TEST(TokenizerJinja, ExpressionsFollowPython) {
  EXPECT_EQ(render("{{ 1 + 2 * 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 7 / 2 }}"),
            "7 3 -4 2 1024 3.5");
  EXPECT_EQ(render("{{ 'a' ~ 1 ~ none }} {{ 'ab' * 3 }} {{ [1] + [2] }} {{ (1, 'x') }} {{ (1,) }}"),
            "a1None ababab [1, 2] (1, 'x') (1,)");
  EXPECT_EQ(render("{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 'b' in 'abc' }} {{ 2 not in [1] }} {{ 1 == 1.0 }}"),
            "True False True True True");
  EXPECT_EQ(render("{{ none or 'x' }} {{ 0 and 'y' }} {{ not [] }} {{ 'y' if 0 else 'n' }} [{{ 'y' if 0 }}]"),
            "x 0 True n []");
  EXPECT_EQ(render("{{ 0.1 + 0.2 }} {{ 1e16 }} {{ 1.0 }} {{ 2.5e-5 }}"), "0.30000000000000004 1e+16 1.0 2.5e-05");
  EXPECT_EQ(render("{{ {'b': 1, 'a': [true, none, 'q\\'s']} }}"), "{'b': 1, 'a': [True, None, \"q's\"]}");
}

TEST(TokenizerJinja, StringLiteralsUnescapeLikePython) {
  EXPECT_EQ(render(R"({{ 'a\nb\t\x41\u00e9\\' }}|{{ "it's" }}|{{ '\d' }})"), "a\nb\tAé\\|it's|\\d");
}

TEST(TokenizerJinja, LoopScopingMatchesJinja2) {
  // A set inside a loop body lasts one iteration; namespace() carries values out.
  EXPECT_EQ(render("{% set x = 1 %}{% for i in [1, 2, 3] %}{{ x }}{% set x = x + i %}{{ x }};{% endfor %}{{ x }}"),
            "12;13;14;1");
  EXPECT_EQ(render("{% set ns = namespace(n=0) %}{% for i in range(4) %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}"),
            "6");
  EXPECT_EQ(render("{% if true %}{% set y = 2 %}{% endif %}{{ y }}"), "2");
  EXPECT_EQ(render("{% for a, b in [[1, 2], [3, 4]] %}{{ a * b }}{{ loop.index }}{{ loop.last }} {% endfor %}"),
            "21False 122True ");
  EXPECT_EQ(render("{% for i in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(render("{% for i in range(10) if i is odd %}{% if i > 5 %}{% break %}{% endif %}{{ i }}{% endfor %}"), "135");
}

TEST(TokenizerJinja, WhitespaceControlAndTrimming) {
  // trim_blocks and lstrip_blocks, as transformers renders chat templates.
  EXPECT_EQ(render("{% if true %}\n  a\n{% endif %}\n  {% if true %}b{% endif %}\n"), "  a\nb");
  EXPECT_EQ(render("x  {%- if true -%}  y  {%- endif -%}  z"), "xyz");
  EXPECT_EQ(render("  {%+ if true %}k{% endif %}"), "  k");
  EXPECT_EQ(render("a{# comment #}b{%- raw %}{{ x }}{% endraw %}"), "ab{{ x }}");
  EXPECT_EQ(render("line\r\nnext\n"), "line\nnext");  // newlines normalized, one trailing newline dropped
}

TEST(TokenizerJinja, UndefinedValues) {
  Value message = ValueDict{};
  EXPECT_EQ(render("[{{ nothing }}]{{ nothing is defined }}{{ m.content is defined }}{{ m.content is none }}",
                   vars({{"m", message}})),
            "[]FalseFalseFalse");
  EXPECT_EQ(render("{% for x in nothing %}x{% endfor %}{{ nothing | length }}{{ nothing | default('d') }}"), "0d");
  EXPECT_NE(error_of("{{ m.content.strip() }}", vars({{"m", message}})).find("'dict object' has no attribute 'content'"),
            std::string::npos);
  EXPECT_NE(error_of("{{ 'a' + nothing }}").find("'nothing' is undefined"), std::string::npos);
}

TEST(TokenizerJinja, ErrorsNameTheLine) {
  EXPECT_EQ(error_of("a\n{{ raise_exception('bad role') }}"), "line 2: template raised an exception: bad role");
  EXPECT_EQ(error_of("{% macro m() %}{% endmacro %}").substr(0, 31), "line 1: unsupported tag 'macro'");
  EXPECT_EQ(error_of("\n\n{{ x | frobnicate }}"), "line 3: no filter named 'frobnicate'");
  EXPECT_EQ(error_of("{% if x %}open"), "line 1: 'if' is never closed (expected endif)");
  EXPECT_EQ(error_of("{% endfor %}"), "line 1: unexpected 'endfor'");
  EXPECT_EQ(error_of("{{ 'a' + 1 }}"), "line 1: can only concatenate str (not \"int\") to str");
  EXPECT_EQ(error_of("{{ x"), "line 1: unexpected end of template, expected '}}'");
  EXPECT_EQ(error_of("{% set n = 1 %}{% set n.a = 2 %}").substr(0, 38), "line 1: cannot assign attribute 'a' on");
  EXPECT_EQ(error_of("{% break %}"), "line 1: 'break' outside a loop");
  EXPECT_EQ(error_of("{{ 'x'.format(1) }}").substr(0, 45), "line 1: 'str' object has no method 'format' (");
}

TEST(TokenizerJinja, LimitsStopRunawayTemplates) {
  EXPECT_NE(error_of("{{ range(10000000) | length }}").find("range() of more than"), std::string::npos);
  EXPECT_NE(error_of("{{ 'x' * 100000000 }}").find("larger than"), std::string::npos);
  EXPECT_NE(error_of("{{ " + std::string(300, '(') + "1" + std::string(300, ')') + " }}").find("nested too deeply"),
            std::string::npos);
  EXPECT_NE(error_of("{% set ns = namespace(x=[]) %}{% for i in range(300) %}{% set ns.x = [ns.x] %}{% endfor %}")
                .find("nested more than 200 levels"),
            std::string::npos);
  EXPECT_NE(error_of("{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}{% endfor %}")
                .find("list longer than"),
            std::string::npos);
  EXPECT_NE(error_of("{% set ns = namespace() %}{% set ns.me = [ns] %}").find("cannot hold a namespace"),
            std::string::npos);
  EXPECT_NE(error_of("{% for i in range(999999) %}{% for j in range(999999) %}{% endfor %}{% endfor %}")
                .find("steps"),
            std::string::npos);
}

TEST(TokenizerJinja, DeepSeekStyleToolCalls) {
  ValueDict call;
  call.set("type", "function");
  call.set("function", ValueDict{{{"name", Value("f")}, {"arguments", Value("{\"a\": 1}")}}});
  ValueDict message;
  message.set("role", "assistant");
  message.set("content", Value::none());
  message.set("tool_calls", ValueList{Value(call)});
  std::string t =
      "{%- for m in messages %}{%- if m['role'] == 'assistant' and m['content'] is none %}"
      "{%- for tool in m['tool_calls'] %}{{ tool['type'] + ':' + tool['function']['name'] + '\\n' + "
      "tool['function']['arguments'] }}{%- endfor %}{%- endif %}{%- endfor %}";
  EXPECT_EQ(render(t, vars({{"messages", ValueList{Value(message)}}})), "function:f\n{\"a\": 1}");
  EXPECT_EQ(render("{{ 'x</think>y'.split('</think>')[-1] }}"), "y");
  EXPECT_EQ(render("{{ messages | tojson }}", vars({{"messages", ValueList{Value(message)}}})),
            "[{\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"type\": \"function\", \"function\": "
            "{\"name\": \"f\", \"arguments\": \"{\\\"a\\\": 1}\"}}]}]");
}

}  // namespace
}  // namespace dsi::jinja
