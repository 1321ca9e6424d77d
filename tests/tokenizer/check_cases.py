#!/usr/bin/env python3
"""Runs the reference cases of tests/data/tokenizer/cases.json through `dsinfer tokenize`
and `dsinfer detokenize` (the embedded DeepSeek-V3 tokenizer, no --tokenizer), the way the
held-out checks run: encode ids, decode text with and without special tokens, chat text and
ids. A bad input line must give an error object on its line while the others go on.

usage: check_cases.py [--bin DSINFER] [--cases FILE] [--tokenizer DIR]
"""
import argparse
import json
import os
import sys

import tok_common


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", help="dsinfer binary (default: $DSINFER_BIN)")
    ap.add_argument("--cases", default=os.path.join(tok_common.ROOT, "tests", "data", "tokenizer", "cases.json"))
    ap.add_argument("--tokenizer", help="tokenizer directory (default: the embedded one)")
    args = ap.parse_args()
    binary = tok_common.dsinfer_bin(args.bin)
    extra = ["--tokenizer", args.tokenizer] if args.tokenizer else []
    with open(args.cases, encoding="utf-8") as f:
        cases = json.load(f)
    failures = []

    enc = cases["encode"]
    got = tok_common.run_lines(binary, "tokenize", [{"text": c["text"]} for c in enc], extra)
    failures += [f"encode {c['text']!r}: {g} != {c['ids']}" for c, g in zip(enc, got) if g.get("ids") != c["ids"]]
    got = tok_common.run_lines(binary, "detokenize", [{"ids": c["ids"]} for c in enc], extra)
    failures += [f"decode {c['ids']}: {g} != {c['decoded']!r}" for c, g in zip(enc, got) if g.get("text") != c["decoded"]]

    dec = cases["decode"]
    for skip, key in ((False, "text"), (True, "text_skip_special")):
        got = tok_common.run_lines(binary, "detokenize", [{"ids": c["ids"], "skip_special_tokens": skip} for c in dec], extra)
        failures += [f"decode {c['ids']} skip={skip}: {g} != {c[key]!r}" for c, g in zip(dec, got) if g.get("text") != c[key]]

    chat = cases["chat"]
    got = tok_common.run_lines(binary, "tokenize", [{"messages": c["messages"], "add_generation_prompt": c["add_generation_prompt"]}
                                                    for c in chat], extra)
    failures += [f"chat {c['messages']}: {g} != {c['text']!r} {c['ids']}" for c, g in zip(chat, got)
                 if g.get("text") != c["text"] or g.get("ids") != c["ids"]]

    # Bad lines get an error object each; the good lines around them still get their answer.
    mixed = [{"text": "ok"}, {"bogus": 1}, {"text": 5}, {"messages": "not a list"}, {"text": "ok"}]
    got = tok_common.run_lines(binary, "tokenize", mixed, extra)
    if not (got[0] == got[4] and "ids" in got[0] and all("error" in g for g in got[1:4])):
        failures.append(f"bad-line handling: {got}")

    for f in failures[:20]:
        print(f)
    n = 2 * len(enc) + 2 * len(dec) + len(chat)
    if failures:
        sys.exit(f"FAILED: {len(failures)} of {n} checks")
    print(f"all {n} reference checks identical")


if __name__ == "__main__":
    main()
