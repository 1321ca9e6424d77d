#!/usr/bin/env python3
"""Differential test of `dsinfer tokenize/detokenize` against Hugging Face `tokenizers`.

Seeded random strings (see tok_common.StringGenerator) must give identical ids, and
decode(encode(s)) must give s back; random id lists must decode identically (with and without
skip_special_tokens, unknown ids included), and the streaming detokenizer's pieces must add up
to the decoded text. Besides the shipped DeepSeek-V3 tokenizer, variants built from its vocab
exercise the other pre-tokenizers, normalizers and added-token options tokenizer.json allows
(the DeepSeek-V2 pre-tokenizer, GPT-2 ByteLevel with a template post-processor, every Split
behavior, lstrip/rstrip/single_word tokens, and the ["a", "b"] merges form the library saves).

usage: diff_tokenizers.py [--bin DSINFER] [--count N] [--seed S] [--variants v3,v2,gpt2,splits]
"""
import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time

from tokenizers import AddedToken, Tokenizer, normalizers, pre_tokenizers, processors, Regex

import tok_common

# DeepSeek-V2's letter class; three Greek Extended range ends are escaped because their
# canonical equivalents (U+03CE, U+0390, U+038A) would make the ranges run backwards.
V2_LETTERS = ("\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-"
              "\u1f7dᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-\u1fd3ῖ-\u1fdbῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ"
              "\U00010400-\U0001044f\U000104b0-\U000104d3\U000104d8-\U000104fb\U00010c80-\U00010cb2"
              "\U00010cc0-\U00010cf2\U000118a0-\U000118df\U0001e900-\U0001e943]+")


def variant(name, base_dir, workdir):
    """(hf tokenizer, directory with its tokenizer.json, decode-roundtrip-exact?)"""
    tok = Tokenizer.from_file(os.path.join(base_dir, "tokenizer.json"))
    if name == "v3":
        return tok, base_dir, True
    split = lambda pattern, behavior="isolated", invert=False: pre_tokenizers.Split(Regex(pattern), behavior, invert)
    if name == "v2":  # DeepSeek-V2's pre-tokenizer: letters, punctuation, trailing space, CJK, single digits
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            split("[\r\n]"), split(V2_LETTERS), split("\\s?[!-/:-~！-／：-～‘-‟　-。]+"), split("\\s+$"),
            split("[一-龥ࠀ-一가-퟿]+"), pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        exact = True
    elif name == "gpt2":  # GPT-2 style: NFC, ByteLevel with its own regex and prefix space, BOS/EOS template
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)
        tok.post_processor = processors.TemplateProcessing(
            single="<｜begin▁of▁sentence｜> $A <｜end▁of▁sentence｜>",
            special_tokens=[("<｜begin▁of▁sentence｜>", 0), ("<｜end▁of▁sentence｜>", 1)])
        exact = False
    elif name == "splits":  # every Split behavior, invert, literal patterns, Digits groups, normalizers
        tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace("\u3000", " "),
                                               normalizers.Replace(Regex("[0-9]{4,}"), "#"),
                                               normalizers.Prepend("^")])
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(" ", "merged_with_previous"), split("\\p{P}+", "merged_with_next"),
            split("[a-z]+", "contiguous", invert=True), split("\\n", "removed"),
            pre_tokenizers.Digits(individual_digits=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        tok.add_tokens([AddedToken("<mask>", lstrip=True, rstrip=True, single_word=True, normalized=False),
                        AddedToken("ＡＢ", normalized=True), AddedToken(" end", rstrip=True, normalized=False)])
        exact = False
    else:
        sys.exit(f"unknown variant {name}")
    out = os.path.join(workdir, name)
    os.makedirs(out, exist_ok=True)
    tok.save(os.path.join(out, "tokenizer.json"))
    return tok, out, exact


def first_difference(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def check_variant(name, binary, strings, id_lists, workdir, max_report):
    hf, directory, exact = variant(name, tok_common.V3_DIR, workdir)
    args = ["--tokenizer", directory]
    failures = 0
    t0 = time.time()
    add_special = name == "gpt2"
    ours = tok_common.run_lines(binary, "tokenize", [{"text": s, "add_special_tokens": add_special} for s in strings], args)
    expected = [e.ids for e in hf.encode_batch(strings, add_special_tokens=add_special)]
    for s, got, want in zip(strings, ours, expected):
        if got.get("ids") != want:
            failures += 1
            if failures <= max_report:
                i = first_difference(got.get("ids", []), want)
                print(f"[{name}] encode mismatch for {s!r}\n  ours: {got}\n  hf:   {want}\n  first difference at {i}")
    # decode(encode(s)): back to s for the exact variants, and equal to the library's decode always
    decoded = tok_common.run_lines(binary, "detokenize", [{"ids": ids} for ids in expected], args)
    hf_decoded = hf.decode_batch(expected, skip_special_tokens=False)
    for s, got, want in zip(strings, decoded, hf_decoded):
        if got.get("text") != want or (exact and want != s):
            failures += 1
            if failures <= max_report:
                print(f"[{name}] decode mismatch for {s!r}\n  ours: {got}\n  hf:   {want!r}")
    # random ids, unknown ids, special tokens, cut UTF-8; and the streaming detokenizer
    requests = [{"ids": ids, "skip_special_tokens": skip, "stream": True} for ids in id_lists for skip in (False, True)]
    got_lines = tok_common.run_lines(binary, "detokenize", requests, args)
    for req, got in zip(requests, got_lines):
        known = [i for i in req["ids"] if 0 <= i < 2**32]
        want = hf.decode(known, skip_special_tokens=req["skip_special_tokens"])
        if got.get("text") != want or "".join(got.get("pieces", [])) != want:
            failures += 1
            if failures <= max_report:
                print(f"[{name}] id decode mismatch for {req}\n  ours: {got}\n  hf:   {want!r}")
    print(f"[{name}] {len(strings)} strings, {len(requests)} id lists: {failures} failures ({time.time() - t0:.1f} s)")
    return failures


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", help="dsinfer binary (default: $DSINFER_BIN)")
    ap.add_argument("--count", type=int, default=10000, help="random strings for the v3 tokenizer")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--variants", default="v3,v2,gpt2,splits")
    ap.add_argument("--max-report", type=int, default=10)
    args = ap.parse_args()
    binary = tok_common.dsinfer_bin(args.bin)
    specials = tok_common.special_tokens(os.path.join(tok_common.V3_DIR, "tokenizer.json"))
    gen = tok_common.StringGenerator(args.seed, specials)
    strings = [gen.string() for _ in range(args.count)]
    rng = random.Random(args.seed + 1)
    n_ids = 129280  # DeepSeek-V3's lm_head rows: more than the tokenizer knows
    id_lists = [[rng.randrange(n_ids) for _ in range(rng.randint(1, 24))] for _ in range(max(50, args.count // 20))]
    id_lists += [[rng.choice([0, 1, 2, 128798, 128799, 128803, 128804, 128814, 128815, 128816])
                  for _ in range(rng.randint(1, 6))] for _ in range(50)]
    workdir = tempfile.mkdtemp(prefix="dsi_tok_diff_")
    try:
        failures = 0
        for name in args.variants.split(","):
            count = len(strings) if name == "v3" else max(100, len(strings) // 5)
            failures += check_variant(name, binary, strings[:count], id_lists, workdir, args.max_report)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if failures:
        sys.exit(f"FAILED: {failures} differences from the reference")
    print("all identical")


if __name__ == "__main__":
    main()
