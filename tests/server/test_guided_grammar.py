"""guided_grammar (and structured_outputs.grammar, vLLM's spelling): an EBNF grammar constrains
the output, through the official openai client, on the tiny-v2-lite fixture (random weights,
the first 1,024 tokens of the DeepSeek-V3 vocabulary, byte-level). Every output is checked by a
recogniser written here, independent of the server's Earley matcher: a finished output must be
a sentence of the grammar, a cut one (finish_reason length) a prefix of one. A strong bias on
EOS makes the model end at the first point the grammar allows: if EOS were allowed anywhere
else the output would fail the check. Malformed grammars are a 400 naming the problem."""
import os
import unittest

import openai

from serverlib import DATA, Server

MODEL_DIR = os.path.join(DATA, "tiny-v2-lite")
PROMPT = [5, 17, 300, 42, 9, 600, 77]
EOS = 1  # <｜end▁of▁sentence｜>

# Nested lists: recursion no regular expression can express.
LISTS = r"""
root ::= list            # a list of digits and lists
list ::= "[" item ( "," item )* "]"
item ::= [0-9] | list
"""

server = None
client = None


def setUpModule():
    global server, client
    server = Server(MODEL_DIR)
    client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)


def tearDownModule():
    if server:
        server.stop_cleanly()


def list_prefix_depths(text):
    """Walks `text` as the LISTS language; returns (viable, complete, max depth): viable when it
    is a prefix of some sentence, complete when it is a sentence."""
    depth, deepest, expect = 0, 0, "open"  # expect: open (only '['), item, after_item
    for i, c in enumerate(text):
        if expect == "done":
            return False, False, deepest
        if expect in ("open", "item") and c == "[":
            depth += 1
            deepest = max(deepest, depth)
            expect = "item"
        elif expect == "item" and c.isdigit() and c.isascii():
            expect = "after_item"
        elif expect == "after_item" and c == ",":
            expect = "item"
        elif expect == "after_item" and c == "]":
            depth -= 1
            expect = "done" if depth == 0 else "after_item"
        else:
            return False, False, deepest
    return True, expect == "done", deepest


class GuidedGrammar(unittest.TestCase):
    def complete(self, seed, **extra):
        return client.completions.create(model=MODEL_DIR, prompt=PROMPT, max_tokens=48, seed=seed, temperature=1.0,
                                         extra_body=extra)

    def test_nested_lists_follow_the_grammar(self):
        deepest = 0
        for seed in range(6):
            c = self.complete(seed, guided_grammar=LISTS).choices[0]
            viable, complete, depth = list_prefix_depths(c.text)
            self.assertTrue(viable, c.text)
            self.assertEqual(complete, c.finish_reason == "stop", (c.finish_reason, c.text))
            deepest = max(deepest, depth)
        self.assertGreaterEqual(deepest, 2, "the outputs never nested a list")

    def test_eos_only_where_the_grammar_accepts(self):
        for seed in range(4):
            c = self.complete(seed, guided_grammar=LISTS, logit_bias={str(EOS): 30}).choices[0]
            self.assertEqual(c.finish_reason, "stop", c.text)
            viable, complete, _ = list_prefix_depths(c.text)
            self.assertTrue(complete, c.text)

    def test_structured_outputs_grammar_and_streaming(self):
        sql = r"""
            root ::= "SELECT " cols " FROM " name ( " WHERE " name "=" [0-9]+ )?
            cols ::= "*" | name ( ", " name )*
            name ::= [a-z] [a-z0-9_]{0,5}
        """
        import re
        pattern = re.compile(r"SELECT (\*|[a-z][a-z0-9_]{0,5}(, [a-z][a-z0-9_]{0,5})*) FROM [a-z][a-z0-9_]{0,5}"
                             r"( WHERE [a-z][a-z0-9_]{0,5}=[0-9]+)?")
        for seed in range(3):
            c = client.completions.create(model=MODEL_DIR, prompt=PROMPT, max_tokens=40, seed=seed,
                                          logit_bias={str(EOS): 8},
                                          extra_body={"structured_outputs": {"grammar": sql}}).choices[0]
            if c.finish_reason == "stop":
                self.assertRegex(c.text, pattern)
                self.assertIsNotNone(pattern.fullmatch(c.text), c.text)
            streamed = "".join(ch.choices[0].text for ch in client.completions.create(
                model=MODEL_DIR, prompt=PROMPT, max_tokens=40, seed=seed, logit_bias={str(EOS): 8}, stream=True,
                extra_body={"guided_grammar": sql}))
            self.assertEqual(streamed, c.text)  # the same constraint, whichever spelling and delivery

    def test_bad_grammars_are_400_naming_the_problem(self):
        for grammar, words in [("root ::= item", "rule 'item' is used but not defined"),
                               ("root ::= \"a\"\nx ::= (\"b\"", "line 2 column 7: '(' without its ')'"),
                               ("start ::= \"a\"", "no rule 'root'"),
                               ("root ::= root \"a\"", "derives no string"),
                               ("", "non-empty string"), (7, "non-empty string")]:
            status, body = server.post("/v1/completions", {"model": MODEL_DIR, "prompt": PROMPT, "max_tokens": 2,
                                                           "guided_grammar": grammar})
            self.assertEqual(status, 400, (grammar, body))
            self.assertEqual(body["error"]["param"], "guided_grammar", body)
            self.assertIn(words, body["error"]["message"])
        # The server keeps serving.
        self.assertEqual(len(self.complete(0).choices), 1)


if __name__ == "__main__":
    unittest.main()
