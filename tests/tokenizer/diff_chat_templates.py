#!/usr/bin/env python3
"""Differential test of the chat-template interpreter against Python jinja2.

Every template in templates/ (the published DeepSeek V2, V2.5, V3, V3-0324, R1 and
R1-Distill chat templates) renders random conversations (system prompts, tool calls with
and without content, tool outputs, reasoning in </think>, special-token text) through
`dsinfer tokenize --chat-template FILE`; the text must equal jinja2's, rendered the way
Hugging Face transformers does it (trim_blocks, lstrip_blocks, its tojson, raise_exception),
and the ids must equal the `tokenizers` library's ids of that text. When jinja2 fails, ours
must fail too. A second set of small templates covers the rest of the supported Jinja
subset (filters, tests, string methods, slicing, loops and scoping, whitespace control).

usage: diff_chat_templates.py [--bin DSINFER] [--count N] [--seed S]
"""
import argparse
import json
import os
import random
import shutil
import sys
import tempfile

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer

import tok_common

TEMPLATE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")
BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"

# Small templates for the rest of the supported subset; each renders `messages` and `data`.
FEATURE_TEMPLATES = {
    "filters": "{{ data.words | join(', ') }}|{{ data.words | length }}|{{ data.words | first }}|{{ data.words | last }}|"
               "{{ data.text | upper }}|{{ data.text | lower }}|{{ data.text | trim }}|{{ data.text | title }}|"
               "{{ data.text | capitalize }}|{{ data.text | replace('a', 'A') }}|{{ data.n | abs }}|"
               "{{ data.missing | default('dflt') }}|{{ '' | default('e', true) }}|{{ data.words | reverse | list }}|"
               "{{ data.words | sort | join('') }}|{{ data.words | unique | list | length }}|{{ data.nums | sum }}|"
               "{{ data.nums | min }}/{{ data.nums | max }}|{{ data.text | wordcount }}|{{ '3' | int + 1 }}|{{ '2.5' | float }}|"
               "{{ data.nums | map('string') | join('+') }}|{{ messages | map(attribute='role') | join(',') }}|"
               "{{ messages | selectattr('role', 'equalto', 'user') | list | length }}|"
               "{{ messages | rejectattr('role', 'equalto', 'user') | map(attribute='role') | list }}|"
               "{{ data.nums | select('odd') | list }}|{{ data.d | dictsort }}|{{ data.d | items | list }}",
    "tojson": "{{ data | tojson }}\n{{ data.d | tojson(indent=2) }}\n{{ messages | tojson }}\n{{ data.text | tojson }}\n"
              "{{ data.nums | tojson(separators=(',', ':')) }}\n{{ data.d | tojson(sort_keys=true) }}",
    "tests": "{% for v in [data.n, data.text, data.words, data.d, none, data.missing, true, 1.5] %}"
             "{{ v is defined }}{{ v is none }}{{ v is string }}{{ v is number }}{{ v is mapping }}{{ v is iterable }}"
             "{{ v is integer }}{{ v is float }}{{ v is boolean }}{{ v is sequence }};{% endfor %}"
             "{{ data.n is odd }}{{ data.n is even }}{{ data.n is divisibleby 3 }}{{ 'a' is in data.text }}"
             "{{ data.n is eq 3 }}{{ data.n is gt 2 }}{{ data.n is not lt 0 }}",
    "strings": "{{ data.text.split() }}|{{ data.text.split('a') }}|{{ data.text.split(' ', 1) }}|{{ data.text.rsplit(' ', 1) }}|"
               "{{ data.text.strip() }}|{{ data.text.lstrip(' ab') }}|{{ data.text.rstrip('xyz ') }}|"
               "{{ data.text.startswith('a') }}{{ data.text.endswith(('x', 'z')) }}|{{ data.text.find('b') }}|"
               "{{ data.text.rfind('a') }}|{{ data.text.count('a') }}|{{ data.text.replace(' ', '_', 2) }}|"
               "{{ '-'.join(data.words) }}|{{ data.text.upper() }}|{{ data.text.title() }}|{{ data.text.splitlines() }}|"
               "{{ data.text[1:4] }}|{{ data.text[::-1] }}|{{ data.text[-3:] }}|{{ data.words[1:] }}|{{ data.words[-1] }}|"
               "{{ data.text ~ data.n ~ none }}|{{ data.text * 2 }}|{{ data.text.isdigit() }}{{ data.text.isspace() }}",
    "scoping": "{% set x = 1 %}{% set ns = namespace(total=0, seen=[]) %}"
               "{% for m in messages %}{{ x }}{% set x = x + loop.index %}{{ x }}{% set ns.total = ns.total + loop.index0 %}"
               "{% if loop.first %}F{% elif loop.last %}L{% else %}M{% endif %}{{ loop.length }}{{ loop.revindex }}"
               "{% set ns.seen = ns.seen + [m.role] %}{% endfor %}{{ x }}|{{ ns.total }}|{{ ns.seen }}"
               "{% for k, v in data.d.items() %}{{ k }}={{ v }};{% else %}empty{% endfor %}"
               "{% for m in messages if m.role != 'system' %}{{ loop.index }}{{ m.role[0] }}{% endfor %}"
               "{% for i in range(5) %}{% if i == 1 %}{% continue %}{% endif %}{% if i == 4 %}{% break %}{% endif %}{{ i }}{% endfor %}"
               "{% set captured %}[{{ data.n }}]{% endset %}{{ captured * 2 }}",
    "whitespace": "{% for m in messages %}\n  {%- if m.role == 'user' %}\n    U: {{ m.content }}\n  {% else %}\n"
                  "    O: {{ m.role }}  \n  {%- endif %}\n{% endfor %}\n{# comment #}\n  {%+ if true %}kept{% endif %}\n"
                  "{%- raw %}{{ not evaluated }}{% endraw %}\n{{- '  trailing' -}}   \n  done {{ data.n + 2 * 3 - 1 // 2 ** 2 % 3 }}\n",
    "errors": "{% if data.n > 6 %}{{ raise_exception('too many: ' ~ data.n) }}{% endif %}"
              "{{ data.text + data.n if data.n < 0 else data.text }}{{ data.words[data.n] if data.n > 3 else '' }}"
              "{{ messages[0].content.missing.deeper if data.n == 3 else '' }}{{ data.nums // data.n if data.n == 2 else '' }}",
}


def hf_tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    """transformers' replacement of jinja2's tojson (no HTML escaping)."""
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def make_env():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = hf_tojson
    env.globals["raise_exception"] = raise_exception
    return env


class ConversationGenerator:
    def __init__(self, seed, specials):
        self.rng = random.Random(seed)
        self.strings = tok_common.StringGenerator(seed + 1000, specials)

    def text(self):
        return self.strings.string() if self.rng.random() < 0.7 else self.rng.choice(["Hello!", "写一首诗", "", " ", "1+1=?"])

    def tool_call(self):
        args = {"city": self.text()[:20], "n": self.rng.randint(0, 9)}
        return {"type": "function", "function": {"name": self.rng.choice(["get_weather", "search", "f"]),
                                                 "arguments": json.dumps(args, ensure_ascii=False)}}

    def message(self):
        r = self.rng
        role = r.choice(["system", "user", "user", "assistant", "assistant", "tool"])
        if role != "assistant":
            return {"role": role, "content": self.text()}
        kind = r.randrange(5)
        if kind == 0:  # a tool call without content
            return {"role": "assistant", "content": None, "tool_calls": [self.tool_call() for _ in range(r.randint(1, 3))]}
        if kind == 1:  # content and tool calls
            return {"role": "assistant", "content": self.text(), "tool_calls": [self.tool_call() for _ in range(r.randint(1, 2))]}
        if kind == 2:  # reasoning before the answer
            return {"role": "assistant", "content": "<think>\n" + self.text() + "\n</think>\n\n" + self.text()}
        if kind == 3:
            return {"role": "assistant", "content": self.text(), "tool_calls": None}
        return {"role": "assistant", "content": self.text()}

    def conversation(self):
        return [self.message() for _ in range(self.rng.randint(1, 7))]

    def data(self):
        r = self.rng
        words = [r.choice(["b", "a", "Beta", "alpha", "ß", "Zed", "a"]) for _ in range(r.randint(1, 5))]
        return {"words": words, "text": r.choice(["  a b  cab x ", "abc\nxyz", "Hello World", "x", "a\u3000b", "12"]),
                "n": r.randint(-5, 9), "nums": [r.randint(-3, 20) for _ in range(r.randint(1, 5))],
                "d": {k: r.randint(0, 3) for k in r.sample(["b", "a", "c", "é"], r.randint(0, 3))}}


def render_jinja(template, messages, add_generation_prompt, data):
    try:
        return template.render(messages=messages, tools=None, add_generation_prompt=add_generation_prompt,
                               bos_token=BOS, eos_token=EOS, data=data), None
    except Exception as e:  # any jinja2 failure: ours must fail as well
        return None, f"{type(e).__name__}: {e}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", help="dsinfer binary (default: $DSINFER_BIN)")
    ap.add_argument("--count", type=int, default=300, help="conversations per template")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-report", type=int, default=8)
    args = ap.parse_args()
    binary = tok_common.dsinfer_bin(args.bin)
    hf = Tokenizer.from_file(os.path.join(tok_common.V3_DIR, "tokenizer.json"))
    specials = tok_common.special_tokens(os.path.join(tok_common.V3_DIR, "tokenizer.json"))
    gen = ConversationGenerator(args.seed, specials)
    env = make_env()
    workdir = tempfile.mkdtemp(prefix="dsi_chat_diff_")
    templates = {name: open(os.path.join(TEMPLATE_DIR, name), encoding="utf-8").read()
                 for name in sorted(os.listdir(TEMPLATE_DIR)) if name.endswith(".jinja")}
    for name, source in FEATURE_TEMPLATES.items():
        templates[f"feature-{name}.jinja"] = source
    failures = 0
    try:
        for name, source in templates.items():
            path = os.path.join(workdir, name)
            with open(path, "w", encoding="utf-8") as f:
                f.write(source)
            cases = []
            for _ in range(args.count):
                cases.append((gen.conversation(), gen.rng.random() < 0.5, gen.data()))
            requests = [{"messages": m, "add_generation_prompt": g, "chat_template_kwargs": {"data": d}} for m, g, d in cases]
            got = tok_common.run_lines(binary, "tokenize", requests, ["--chat-template", path])
            n_errors = 0
            compiled = env.from_string(source)
            for (messages, gen_prompt, data), ours in zip(cases, got):
                want, error = render_jinja(compiled, messages, gen_prompt, data)
                ok = ("error" in ours) if error else (ours.get("text") == want and
                                                      ours.get("ids") == hf.encode(want, add_special_tokens=False).ids)
                n_errors += error is not None
                if not ok:
                    failures += 1
                    if failures <= args.max_report:
                        print(f"[{name}] mismatch\n  messages: {json.dumps(messages, ensure_ascii=False)}\n"
                              f"  data: {data}\n  jinja2: {error or repr(want)}\n  ours:   {ours}")
            print(f"[{name}] {len(cases)} conversations ({n_errors} rejected by both)")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if failures:
        sys.exit(f"FAILED: {failures} differences from jinja2")
    print("all identical")


if __name__ == "__main__":
    main()
