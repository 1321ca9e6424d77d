// guided_grammar from its definitions: the EBNF parser's errors name line and column, the
// Earley matcher accepts exactly the language (recursion of every kind, including left
// recursion and nesting that no regex can count), random sentences drawn through the token
// masks are checked by an independent recogniser, and masks over a vocabulary equal the
// brute-force answer (every token whose bytes the grammar can read next), on a small vocabulary
// and on the real DeepSeek-V3 one.
#include <gtest/gtest.h>

#include <random>

#include "../tokenizer/test_paths.h"
#include "core/error.h"
#include "grammar/cfg_constraint.h"
#include "grammar/constraint.h"
#include "grammar/earley.h"
#include "server/structured_output.h"
#include "tokenizer/tokenizer.h"

namespace dsi::grammar {
namespace {

bool accepts(const std::string& grammar, const std::string& text) { return Earley(parse_ebnf(grammar)).accepts(text); }

std::string error_of(const std::string& grammar) {
  try {
    Earley e(parse_ebnf(grammar));
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Ebnf, ErrorsNameLineAndColumn) {
  EXPECT_EQ(error_of("root ::= \"a\"\nx ::= \"b"), "grammar: line 2 column 7: a literal without its closing quote");
  EXPECT_EQ(error_of("root ::= item\n"), "grammar: line 1 column 10: rule 'item' is used but not defined");
  EXPECT_EQ(error_of("start ::= \"a\""), "grammar: no rule 'root' (the start symbol: root ::= ...)");
  EXPECT_EQ(error_of("root ::= \"a\"\nroot ::= \"b\""), "grammar: line 2 column 1: rule 'root' is defined twice");
  EXPECT_EQ(error_of("root = \"a\""), "grammar: line 1 column 6: expected '::=' after the rule name 'root'");
  EXPECT_EQ(error_of("root ::= (\"a\" | \"b\"\n"), "grammar: line 1 column 10: '(' without its ')'");
  EXPECT_EQ(error_of("root ::= \"a\"{3,1}"), "grammar: line 1 column 13: repeat {3,1} has its bounds out of order");
  EXPECT_EQ(error_of("root ::= [z-a]"), "grammar: line 1 column 10: a class range out of order");
  EXPECT_EQ(error_of("root ::= \"\\q\""), "grammar: line 1 column 11: unknown escape '\\q'");
  EXPECT_EQ(error_of("root ::= \"a\"{5000}"), "grammar: line 1 column 14: a repeat count above 1000");
  EXPECT_EQ(error_of(""), "grammar: empty (it needs at least a rule 'root ::= ...')");
  EXPECT_EQ(error_of("root ::= \"a\" root"),
            "grammar: rule 'root' derives no string (every alternative recurses without end)");
  EXPECT_EQ(error_of("root ::= \"a\" )"), "grammar: line 1 column 14: ')' without its '('");
}

TEST(Ebnf, TooManyItemsAtOnceIsACompileError) {
  std::string g = "root ::= \"w0\"";
  for (int i = 1; i < 25000; ++i) g += " | \"w" + std::to_string(i) + "\"";
  EXPECT_NE(error_of(g).find("more than 20000 Earley items"), std::string::npos) << error_of(g);
  // Behind a first byte, the same alternatives are a byte the matcher refuses (bounded work).
  Earley e(parse_ebnf("root ::= \"x\" many | \"y\"\nmany ::= " + g.substr(std::string("root ::= ").size())));
  EXPECT_FALSE(e.advance(e.start(), "x"));
  EXPECT_TRUE(e.accepts("y"));
}

TEST(Ebnf, TheVllmSqlExample) {
  const std::string g = R"(
    root ::= select_statement
    select_statement ::= "SELECT " column " from " table " where " condition
    column ::= "col_1 " | "col_2 "
    table ::= "table_1 " | "table_2 "
    condition ::= column "= " number
    number ::= "1 " | "2 "   # a comment
  )";
  EXPECT_TRUE(accepts(g, "SELECT col_1  from table_2  where col_2 = 1 "));
  EXPECT_FALSE(accepts(g, "SELECT col_3  from table_2  where col_2 = 1 "));
  EXPECT_FALSE(accepts(g, "SELECT col_1  from table_2  where col_2 = 1"));
}

TEST(Ebnf, RecursionOfEveryKind) {
  const std::string parens = R"g(root ::= "(" root ")" root | "")g";  // balanced parentheses
  EXPECT_TRUE(accepts(parens, ""));
  EXPECT_TRUE(accepts(parens, "(()())()"));
  EXPECT_TRUE(accepts(parens, std::string(300, '(') + std::string(300, ')')));
  EXPECT_FALSE(accepts(parens, std::string(300, '(') + std::string(299, ')')));
  EXPECT_FALSE(accepts(parens, "())("));
  // Left recursion, as written in textbooks.
  const std::string expr = R"g(
    root ::= expr
    expr ::= expr ("+" | "-") term | term
    term ::= term "*" factor | factor
    factor ::= [0-9]+ | "(" expr ")")g";
  EXPECT_TRUE(accepts(expr, "1+2*(3-4)*5"));
  EXPECT_TRUE(accepts(expr, "((7))"));
  EXPECT_FALSE(accepts(expr, "1+*2"));
  EXPECT_FALSE(accepts(expr, "(1+2"));
  // Nested JSON-ish lists.
  const std::string lists = R"(
    root ::= list
    list ::= "[" ( item ( "," item )* )? "]"
    item ::= list | [0-9]+ | "\"" [^"\\]* "\"")";
  EXPECT_TRUE(accepts(lists, "[]"));
  EXPECT_TRUE(accepts(lists, "[1,[2,[\"h\xC3\xA9\",[]]],3]"));
  EXPECT_FALSE(accepts(lists, "[1,[2]"));
  EXPECT_FALSE(accepts(lists, "[1,]"));
  EXPECT_FALSE(accepts(lists, "[\"\xC3\"]"));  // half a UTF-8 character
  // An ambiguous grammar stays bounded (kMaxEarleyItems) and still decides.
  const std::string ambiguous = R"(root ::= root root | "x" | "")";
  EXPECT_TRUE(accepts(ambiguous, std::string(200, 'x')));
  EXPECT_FALSE(accepts(ambiguous, "xxy"));
}

TEST(Ebnf, LiteralsClassesAndRepeats) {
  EXPECT_TRUE(accepts(R"(root ::= "a\n\t\"\\\x41\u00e9")", "a\n\t\"\\A\xC3\xA9"));
  EXPECT_TRUE(accepts(R"(root ::= 'it''s')", "its"));
  EXPECT_TRUE(accepts(R"(root ::= [a-z0-9_]+)", "ab_09"));
  EXPECT_FALSE(accepts(R"(root ::= [a-z0-9_]+)", "aB"));
  EXPECT_TRUE(accepts(R"(root ::= [^a-z]+)", "Z\xE2\x82\xAC\n"));  // negated: any other character, UTF-8 included
  EXPECT_FALSE(accepts(R"(root ::= [^a-z]+)", "Zq"));
  EXPECT_TRUE(accepts(R"(root ::= [α-ω]{2})", "\xCE\xB1\xCF\x89"));  // non-ASCII ranges
  EXPECT_FALSE(accepts(R"(root ::= [α-ω]{2})", "\xCE\xB1"));
  EXPECT_TRUE(accepts(R"(root ::= . .)", "x\xF0\x9F\x98\x80"));
  EXPECT_TRUE(accepts(R"(root ::= "a"{2,3} "b"? "c"{2,})", "aaaccc"));
  EXPECT_FALSE(accepts(R"(root ::= "a"{2,3} "b"? "c"{2,})", "aaaabcc"));
  EXPECT_FALSE(accepts(R"(root ::= "a"{2,3} "b"? "c"{2,})", "aabc"));
  // A rule may span lines; the next `name ::=` ends it.
  EXPECT_TRUE(accepts("root ::= a\n  | b\na ::= \"x\"\nb ::=\n  \"y\" \"z\"", "yz"));
}

// Sets are interned: where the grammar's configuration repeats the set is the same object, so
// a long string costs a bounded number of sets (and a constraint one mask per set).
TEST(Earley, RepeatedConfigurationsAreOneSet) {
  Earley e(parse_ebnf(R"(root ::= "[" ( "\"" [a-z]* "\"" )* "]")"));
  auto a = e.advance(e.start(), "[\"ab");
  auto b = e.advance(e.start(), "[\"abcdefgh");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a, b);
  EXPECT_EQ(e.advance(e.start(), "[\"a\""), e.advance(e.start(), "[\"a\"\"bc\""));
  auto c = e.advance(e.start(), "[" + std::string(1, '"') + std::string(5000, 'q'));
  ASSERT_TRUE(c);
  EXPECT_LT(e.n_sets(), 20u);
  // Nesting makes new sets, as it must: each depth is another configuration.
  Earley p(parse_ebnf(R"g(root ::= "(" root ")" | "")g"));
  auto deep = p.advance(p.start(), std::string(50, '('));
  ASSERT_TRUE(deep);
  EXPECT_FALSE(deep->accepting);
  EXPECT_TRUE(p.advance(deep, std::string(50, ')'))->accepting);
  EXPECT_FALSE(p.advance(deep, std::string(49, ')'))->accepting);
}

// Tokens are byte strings: a mask is right when it equals "every token the matcher can read".
std::vector<int32_t> brute_force(const Earley& e, const std::shared_ptr<const EarleySet>& s,
                                 const std::vector<std::string>& vocab) {
  std::vector<int32_t> out;
  for (size_t t = 0; t < vocab.size(); ++t)
    if (!vocab[t].empty() && e.advance(s, vocab[t])) out.push_back(int32_t(t));
  return out;
}

// An independent recogniser for balanced parentheses with x's: depth never below zero, zero at the end.
bool balanced(const std::string& s) {
  int depth = 0;
  for (char c : s) {
    if (c == '(')
      ++depth;
    else if (c == ')' && --depth < 0)
      return false;
    else if (c != '(' && c != ')' && c != 'x')
      return false;
  }
  return depth == 0;
}

TEST(CfgConstraint, MasksOverASmallVocabularyAndEos) {
  const std::vector<std::string> vocab = {"(", ")", "()", "((", "))", "x", ")(", "", "(x)", "y", "x)", "(()"};
  auto trie = std::make_shared<const TokenTrie>(vocab);
  const Cfg cfg = parse_ebnf("root ::= item*\nitem ::= \"x\" | \"(\" root \")\"");
  CfgConstraint c(cfg, trie);
  std::mt19937_64 rng(3);
  for (int round = 0; round < 200; ++round) {
    std::vector<int32_t> out;
    std::string text;
    auto s = c.earley().start();
    for (int k = 0; k < 40; ++k) {
      auto next = c.next(out);
      ASSERT_TRUE(next.tokens);
      ASSERT_EQ(*next.tokens, brute_force(c.earley(), s, vocab)) << "after '" << text << "'";
      EXPECT_EQ(next.can_end, balanced(text)) << text;  // EOS exactly where the grammar accepts
      EXPECT_FALSE(next.tokens->empty());               // this grammar can always go on
      if (next.can_end && rng() % 6 == 0) break;
      int32_t t = (*next.tokens)[rng() % next.tokens->size()];
      out.push_back(t);
      text += vocab[size_t(t)];
      s = c.earley().advance(s, vocab[size_t(t)]);
      ASSERT_TRUE(s);
    }
    // Whatever the walk produced is a balanced prefix: closing what is open finishes it.
    int open = 0;
    for (char ch : text) open += ch == '(' ? 1 : ch == ')' ? -1 : 0;
    ASSERT_GE(open, 0) << text;
    EXPECT_TRUE(balanced(text + std::string(size_t(open), ')'))) << text;
  }
  // A token the grammar refuses ends the output's constraint: nothing more is allowed.
  EXPECT_TRUE(c.next(std::vector<int32_t>{9}).tokens == nullptr);
}

TEST(CfgConstraint, CachedAndEqualToBruteForceOnTheRealVocabulary) {
  const Tokenizer tok = Tokenizer::from_dir(test::v3_tokenizer_dir());
  const std::vector<std::string> bytes = server::vocabulary_bytes(tok, 129280);
  auto trie = std::make_shared<const TokenTrie>(bytes);
  GrammarCache cache(trie);
  const Json g = R"(
    root  ::= value
    value ::= list | "\"" [^"\\]{0,12} "\"" | [0-9]+ | "null"
    list  ::= "[" ( value ( ", " value )* )? "]")";
  auto c = cache.get(SpecKind::grammar, g);
  EXPECT_EQ(cache.get(SpecKind::grammar, g), c);  // compiled once
  const auto& cfg = dynamic_cast<const CfgConstraint&>(*c);
  const std::string doc = "[[\"ab\", 12], [], null, [\"x\xC3\xA9\"]]";
  const std::vector<int32_t> ids = tok.encode(doc, false);
  auto s = cfg.earley().start();
  std::vector<int32_t> out;
  size_t multi_terminal = 0;
  for (size_t k = 0; k <= ids.size(); ++k) {
    auto next = c->next(out);
    ASSERT_TRUE(next.tokens);
    if (k % 3 == 0 || k == ids.size()) {  // (brute force: 129,280 replays per check)
      const auto brute = brute_force(cfg.earley(), s, bytes);
      ASSERT_EQ(*next.tokens, brute) << "at token " << k;
      for (int32_t t : brute)
        multi_terminal += bytes[size_t(t)].size() > 1 && bytes[size_t(t)].find_first_of("[]\",") != std::string::npos;
    }
    EXPECT_EQ(next.can_end, k == ids.size());
    EXPECT_FALSE(std::binary_search(next.tokens->begin(), next.tokens->end(), *tok.eos_token_id()));
    if (k == ids.size()) break;
    ASSERT_TRUE(std::binary_search(next.tokens->begin(), next.tokens->end(), ids[k])) << "token " << k;
    out.push_back(ids[k]);
    s = cfg.earley().advance(s, bytes[size_t(ids[k])]);
  }
  EXPECT_GT(multi_terminal, 0u);  // tokens such as `["` or `],` span several terminals
  EXPECT_THROW(cache.get(SpecKind::grammar, "root ::= undefined_rule"), Error);
}

}  // namespace
}  // namespace dsi::grammar
