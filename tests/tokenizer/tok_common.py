"""Shared helpers of the tokenizer's Python tests: running `dsinfer tokenize/detokenize` on
JSON lines, and a seeded generator of hard strings (mixed scripts, digits, white space runs,
emoji with ZWJ, combining marks, special-token text and near-misses)."""
import json
import os
import random
import subprocess
import sys
import tempfile
import unicodedata

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
V3_DIR = os.path.join(ROOT, "assets", "tokenizer", "deepseek-v3")


def dsinfer_bin(arg=None):
    path = arg or os.environ.get("DSINFER_BIN")
    if not path:
        sys.exit("set DSINFER_BIN or pass --bin (the dsinfer binary)")
    if not os.access(path, os.X_OK):
        sys.exit(f"not an executable: {path}")
    return path


def run_lines(binary, command, items, extra_args=()):
    """Feeds JSON objects (one per line) to `binary command`, returns the parsed output lines."""
    with tempfile.TemporaryFile("w+b") as f:
        for item in items:
            f.write(json.dumps(item, ensure_ascii=False).encode("utf-8") + b"\n")
        f.seek(0)
        proc = subprocess.run([binary, command, *extra_args], stdin=f, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, check=False)
    if proc.returncode != 0:
        sys.exit(f"{command} exited with {proc.returncode}: {proc.stderr.decode(errors='replace')}")
    # Only "\n" ends a line: the output may hold U+2028 and other characters splitlines() cuts at.
    lines = proc.stdout.decode("utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) != len(items):
        sys.exit(f"{command}: {len(items)} inputs but {len(lines)} output lines")
    return [json.loads(line) for line in lines]


def special_tokens(tokenizer_json_path):
    with open(tokenizer_json_path, encoding="utf-8") as f:
        return [t["content"] for t in json.load(f)["added_tokens"]]


class StringGenerator:
    """Random strings that stress a byte-level BPE tokenizer's pre-tokenizer and added tokens."""

    WORDS = ["hello", "world", "The", "quick", "brown", "fox", "don't", "I'm", "we'll", "they're", "it's",
             "naïve", "café", "Straße", "Ωmega", "données", "пример", "мир", "ελληνικά", "GPU", "NVLink",
             "tensor_parallel", "x", "A", "ZZZ", "camelCase", "snake_case", "HTTP/2", "e.g.", "U.S.A."]
    CODE = ["def f(x):\n    return x * 2\n", "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}",
            "#include <vector>", "if (a && b || !c) { x->y = z[0]; }", "SELECT * FROM t WHERE id = 1;",
            "<div class=\"a\">b</div>", "{\"key\": [1, 2, 3], \"ok\": true}", "x = [i**2 for i in range(10)]",
            "    indented\n        more\n", "a\\b\\\\c", "$HOME/.cache", "~/x.y_z-w", "0x7fff_ffff", "1e-9f"]
    SPACES = [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", "\r", "\u00a0", "\u3000", "\u2003", "\u2009",
              "\u180e", "\u0085", "\u2028", "\u2029", "\u200b", "\x0b", "\x0c", " \n ", "\t\n\t", "\u202f"]
    EMOJI = ["😀", "🚀", "👍🏽", "👨\u200d👩\u200d👧\u200d👦", "🏳️\u200d🌈", "🇨🇳", "🇺🇸", "1️⃣", "❤️", "🧑\u200d💻",
             "👩🏾\u200d🔬", "🤷\u200d♂️", "☕", "🫠", "🦀",
             "🩷", "🫨", "🪿", "\U0001f426\u200d\u2b1b"]  # Unicode 15: newer than PCRE2's own tables
    SYMBOLS = ["∑", "≤", "→", "©", "®", "™", "€", "£", "¥", "“", "”", "‘", "’", "—", "–", "…", "·", "•",
               "§", "¶", "†", "°", "±", "×", "÷", "«", "»", "¿", "¡", "。", "，", "、", "！", "？", "：", "「", "」"]
    DIGITS = ["٣٤٥", "١٢٣٤", "１２３", "²³", "½", "Ⅻ", "⑦", "߁", "३४५", "๓"]

    def __init__(self, seed, specials):
        self.rng = random.Random(seed)
        self.specials = specials

    def _chars(self, lo, hi, n):
        return "".join(chr(self.rng.randint(lo, hi)) for _ in range(n))

    def _assigned(self, lo, hi):
        while True:
            c = chr(self.rng.randint(lo, hi))
            if unicodedata.category(c) not in ("Cn", "Cs"):
                return c

    def near_miss(self):
        s = self.rng.choice(self.specials)
        op = self.rng.randrange(7)
        if op == 0 and len(s) > 2:
            i = self.rng.randrange(len(s))
            return s[:i] + s[i + 1:]
        if op == 1:
            return s.replace("｜", "|")
        if op == 2:
            return s.lower() if s != s.lower() else s.upper()
        if op == 3:
            i = self.rng.randrange(1, len(s))
            return s[:i] + " " + s[i:]
        if op == 4:
            return s[: self.rng.randrange(1, len(s))]
        if op == 5:
            return "<" + s
        return s[1:]

    def piece(self):
        r = self.rng
        kind = r.randrange(22)
        if kind == 0:
            return r.choice(self.WORDS)
        if kind == 1:
            return "".join(r.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'") for _ in range(r.randint(1, 15)))
        if kind == 2:  # CJK, including the edges of the pre-tokenizer's ranges
            return r.choice([self._chars(0x4E00, 0x9FA5, r.randint(1, 12)), self._chars(0x9FA0, 0x9FFF, 2),
                             self._chars(0x3400, 0x4DBF, 3), self._chars(0x31350, 0x323AF, 2),  # Ext A, Ext H
                             "模型推理显存专家并行", "分布式训练"])
        if kind == 3:  # kana
            return r.choice([self._chars(0x3041, 0x3096, r.randint(1, 8)), self._chars(0x30A0, 0x30FF, r.randint(1, 8)),
                             "こんにちは", "カタカナ", "ー", "ゝゞヽヾ", "゛゜"])
        if kind == 4:  # Hangul
            return r.choice([self._chars(0xAC00, 0xD7A3, r.randint(1, 6)), self._chars(0x1100, 0x11FF, 3),
                             self._chars(0x3131, 0x318E, 2), "한국어"])
        if kind == 5:  # Arabic
            return r.choice([self._chars(0x0621, 0x064A, r.randint(2, 8)), "مرحبا بالعالم", "٠١٢٣", "ـ"])
        if kind == 6:  # Devanagari (with combining vowel signs and virama)
            return r.choice(["नमस्ते", "हिन्दी", "क्षत्रिय", self._chars(0x0900, 0x097F, r.randint(1, 6))])
        if kind == 7:  # digits
            return r.choice(["".join(r.choice("0123456789") for _ in range(r.randint(1, 12))), r.choice(self.DIGITS),
                             "3.14159", "1,000,000", "2025-09-25", "100%", "v1.2.3"])
        if kind == 8:
            return "".join(r.choice(self.SPACES) for _ in range(r.randint(1, 5)))
        if kind == 9:
            return "".join(r.choice(self.EMOJI) for _ in range(r.randint(1, 3)))
        if kind == 10:  # combining marks, on a base or alone
            base = r.choice(["e", "a", "o", "n", "", " ", "字", "ع"])
            return base + "".join(chr(r.randint(0x0300, 0x036F)) for _ in range(r.randint(1, 3)))
        if kind == 11:
            return r.choice(self.specials)
        if kind == 12:
            return self.near_miss()
        if kind == 13:
            return "".join(r.choice(self.SYMBOLS) for _ in range(r.randint(1, 4)))
        if kind == 14:
            return "".join(r.choice("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~") for _ in range(r.randint(1, 6)))
        if kind == 15:
            return r.choice(self.CODE)
        if kind == 16:
            return self._assigned(0x80, 0xFFFF)
        if kind == 17:
            return self._assigned(0x10000, 0x2FFFF)
        if kind == 18:
            return chr(r.choice(list(range(0, 0x20)) + [0x7F]))
        if kind == 19:
            return "<think>\n" + r.choice(self.WORDS) + "\n</think>\n\n"
        if kind == 20:  # apostrophes and letters after punctuation (the V3 regex's first branch)
            return r.choice(["'s", "'re", "'ll", "'t", "-x", ".net", "(abc", "@user", "#tag", "$var"])
        return " " + r.choice(self.WORDS)

    def string(self):
        r = self.rng
        parts = []
        for _ in range(r.randint(1, 12)):
            parts.append(self.piece())
            if r.random() < 0.4:
                parts.append(r.choice(["", " ", " ", "  ", "\n", "\t"]))
        return "".join(parts)
