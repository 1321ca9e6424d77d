#!/usr/bin/env python3
"""Encode throughput, single thread, of dsinfer's tokenizer next to Hugging Face `tokenizers`
on the same corpus in the same run; also checks that both give identical ids.

The corpus is built at run time from text on the machine, in documents of about 4 KB:
English prose (../shared/*.md, the project's docs, /usr/share/common-licenses), code (the
project's C++ and Python sources) and Chinese (../shared/seeds/*.txt), a third of the bytes
each (as much as there is Chinese). Passes of the two tokenizers alternate, so that a busy
machine slows both alike; the medians are compared.

usage: run_bench.py [--bench build/bin/bench_tokenizer] [--passes 15] [--category-bytes N]
"""
import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ["TOKENIZERS_PARALLELISM"] = "false"  # single thread, as ours
os.environ["RAYON_NUM_THREADS"] = "1"
from tokenizers import Tokenizer  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SHARED = os.path.abspath(os.path.join(ROOT, "..", "shared"))
DOC_BYTES = 4096


def read(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (UnicodeDecodeError, OSError):
        return ""


def chunks(text, size):
    """Documents of about `size` bytes, cut at line ends."""
    out, cur = [], []
    n = 0
    for line in text.splitlines(keepends=True):
        cur.append(line)
        n += len(line.encode("utf-8"))
        if n >= size:
            out.append("".join(cur))
            cur, n = [], 0
    if cur:
        out.append("".join(cur))
    return out


def category(paths, budget):
    docs, n = [], 0
    for p in sorted(paths):
        for d in chunks(read(p), DOC_BYTES):
            if n >= budget:
                return docs, n
            docs.append(d)
            n += len(d.encode("utf-8"))
    return docs, n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", default=os.path.join(ROOT, "build", "bin", "bench_tokenizer"))
    ap.add_argument("--passes", type=int, default=15)
    ap.add_argument("--category-bytes", type=int, help="bytes of each kind of text (default: all the Chinese there is)")
    args = ap.parse_args()

    english = glob.glob(os.path.join(SHARED, "*.md")) + glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True)
    english += glob.glob("/usr/share/common-licenses/*")
    code = [p for ext in ("cpp", "h", "py") for p in glob.glob(os.path.join(ROOT, "src", "**", f"*.{ext}"), recursive=True)]
    code += glob.glob(os.path.join(ROOT, "tests", "**", "*.py"), recursive=True)
    chinese = glob.glob(os.path.join(SHARED, "seeds", "*.txt"))
    if not chinese:
        sys.exit(f"no Chinese text found in {SHARED}/seeds")
    budget = args.category_bytes or sum(len(read(p).encode("utf-8")) for p in chinese)
    parts = {name: category(paths, budget) for name, paths in
             (("english", english), ("code", code), ("chinese", chinese))}
    docs = [d for name in ("english", "code", "chinese") for d in parts[name][0]]
    n_bytes = sum(len(d.encode("utf-8")) for d in docs)
    print("corpus: " + ", ".join(f"{name} {n / 1e3:.0f} KB" for name, (_, n) in parts.items()) +
          f"; {len(docs)} documents, {n_bytes / 1e6:.2f} MB")

    tok = Tokenizer.from_file(os.path.join(ROOT, "assets", "tokenizer", "deepseek-v3", "tokenizer.json"))
    hf_rates, our_rates = [], []
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "corpus.jsonl")
        with open(corpus, "w", encoding="utf-8") as f:
            for d in docs:
                f.write(json.dumps({"text": d}, ensure_ascii=False) + "\n")
        ids_path = os.path.join(tmp, "ids.jsonl")
        for _ in range(args.passes):
            t0 = time.perf_counter()
            hf_ids = [tok.encode(d, add_special_tokens=False).ids for d in docs]
            hf_rates.append(n_bytes / 1e6 / (time.perf_counter() - t0))
            proc = subprocess.run([args.bench, "--corpus", corpus, "--passes", "1", "--ids-out", ids_path],
                                  capture_output=True, text=True, check=True)
            our_rates.append(json.loads(proc.stdout.strip().splitlines()[-1])["encode_mb_per_s"])
        with open(ids_path) as f:
            our_ids = [json.loads(line) for line in f]
    hf = statistics.median(hf_rates)
    ours = statistics.median(our_rates)
    mismatches = sum(a != b for a, b in zip(our_ids, hf_ids)) + abs(len(our_ids) - len(hf_ids))

    print(f"tokenizers {__import__('tokenizers').__version__} (1 thread): {hf:.2f} MB/s median of {len(hf_rates)} passes "
          f"(min {min(hf_rates):.2f}, max {max(hf_rates):.2f})")
    print(f"dsinfer (1 thread):               {ours:.2f} MB/s median of {len(our_rates)} passes "
          f"(min {min(our_rates):.2f}, max {max(our_rates):.2f})")
    print(f"ratio dsinfer / tokenizers:       {ours / hf:.2f}x")
    print(f"documents with different ids:     {mismatches}")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
