"""A `vllm serve` command line and vLLM's request fields against `dsinfer serve`, through the
official `openai` client and raw HTTP, on the tiny-v2-lite fixture (random weights, 1024-token
vocabulary, so prompts are token ids): the positional MODEL, vLLM's flag spellings, the served
model name as --model was typed, --max-model-len 8k-style sizes, --seed as the default
sampling seed, --max-logprobs, --generation-config from a checkpoint's generation_config.json,
and request fields vLLM accepts (max_completion_tokens on completions, request_id, priority,
truncate_prompt_tokens, ignored extras with their warning line, refused ones with a 400)."""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

import openai

from serverlib import BIN, DATA, Server

MODEL_DIR = os.path.join(DATA, "tiny-v2-lite")
PROMPT = [5, 17, 300, 42, 9, 600, 77]

# A typical `vllm serve` line for DeepSeek-V2-Lite, pointed at the fixture. Flags owned by
# others (--tensor-parallel-size, --gpu-memory-utilization) are left to their owners.
VLLM_LINE = [MODEL_DIR, "--trust-remote-code", "--max-model-len", "8k", "--enable-prefix-caching",
             "--tool-call-parser", "deepseek_v3", "--enable-auto-tool-choice", "--reasoning-parser", "deepseek_r1",
             "--dtype", "auto", "--kv-cache-dtype", "auto", "--max-logprobs", "5", "--generation-config", "auto",
             "--disable-log-requests", "--disable-log-stats", "--uvicorn-log-level", "warning", "--seed", "1234"]

server = None
client = None


def setUpModule():
    global server, client
    server = Server(*VLLM_LINE)
    client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)


def tearDownModule():
    if server:
        server.stop_cleanly()


def sample(srv, **extra):
    status, body = srv.post("/v1/completions", {"prompt": PROMPT, "max_tokens": 6, "ignore_eos": True,
                                                "return_token_ids": True, **extra})
    assert status == 200, body
    return [c["token_ids"] for c in body["choices"]]


class CommandLine(unittest.TestCase):
    def test_model_name_is_the_argument_and_max_model_len_parsed(self):
        models = client.models.list().data
        self.assertEqual([m.id for m in models], [MODEL_DIR])  # as typed, like vLLM
        self.assertEqual(models[0].model_extra["max_model_len"], 8000)  # 8k = 8000 (8K would be 8192)
        log = server.log_text()
        for flag in ("--trust-remote-code", "--disable-log-requests", "--disable-log-stats", "--uvicorn-log-level",
                     "--enable-auto-tool-choice"):
            self.assertIn(f"{flag}: accepted for vLLM compatibility", log)

    def test_bad_values_are_clear_errors(self):
        cases = [(["--dtype", "float16"], "float16 is not supported yet"),
                 (["--kv-cache-dtype", "fp8"], "fp8 is not supported yet"),
                 (["--quantization", "fp8"], "is not FP8-quantized"),
                 (["--max-model-len", "12q"], "not a number of tokens"),
                 (["--max-logprobs", "21"], "--max-logprobs 21 must be in [0, 20]"),
                 (["--enable-auto-tool-choice"], "needs --tool-call-parser"),
                 (["--generation-config", DATA], "has no generation_config.json"),
                 (["--model", os.path.join(DATA, "tiny-v3-fp8")], "two models given")]
        for flags, words in cases:
            out = subprocess.run([BIN, "serve", MODEL_DIR, "--port", "0", *flags], capture_output=True, text=True,
                                 timeout=60)
            self.assertNotEqual(out.returncode, 0, flags)
            self.assertIn(words, out.stdout + out.stderr, flags)

    def test_no_enable_prefix_caching_still_parses(self):
        out = subprocess.run([BIN, "serve", "--help"], capture_output=True, text=True, check=True)
        self.assertIn("--no-enable-prefix-caching", out.stdout)
        self.assertIn("MODEL", out.stdout)

    def test_plan_takes_hub_ids(self):
        out = subprocess.run([BIN, "plan", "--model", "deepseek-ai/DeepSeek-V3", "--gpus", "8xH200"],
                             capture_output=True, text=True, check=True)
        self.assertIn("deepseek-v3 (built-in: deepseek-ai/DeepSeek-V3", out.stdout)


class Seeds(unittest.TestCase):
    def test_seed_flag_makes_a_fresh_server_repeat_itself(self):
        # Two fresh servers with the same --seed answer the same unseeded requests alike; a
        # request's own seed still wins, and another --seed gives other samples.
        def run(seed):
            srv = Server(MODEL_DIR, "--seed", str(seed))
            try:
                return [sample(srv, temperature=1.0) for _ in range(3)], sample(srv, temperature=1.0, seed=7)
            finally:
                srv.stop_cleanly()
        a, a_seeded = run(99)
        b, b_seeded = run(99)
        c, _ = run(100)
        self.assertEqual(a, b)
        self.assertNotEqual(a[0], a[1])  # consecutive unseeded requests get different seeds
        self.assertNotEqual(a, c)
        self.assertEqual(a_seeded, b_seeded)
        self.assertEqual(a_seeded, sample(server, temperature=1.0, seed=7))


class GenerationConfig(unittest.TestCase):
    def test_checkpoint_generation_config_sets_defaults(self):
        with tempfile.TemporaryDirectory() as tmp:
            model = os.path.join(tmp, "model")
            os.mkdir(model)
            for name in os.listdir(MODEL_DIR):
                os.symlink(os.path.join(os.path.abspath(MODEL_DIR), name), os.path.join(model, name))
            with open(os.path.join(model, "generation_config.json"), "w") as f:
                json.dump({"bos_token_id": 0, "eos_token_id": 1, "do_sample": True, "temperature": 0.0,
                           "top_p": 0.95, "max_new_tokens": 3}, f)
            srv = Server("--model", model)
            try:
                self.assertIn("default sampling from", srv.log_text())
                greedy = sample(server, temperature=0)[0]
                status, body = srv.post("/v1/completions", {"prompt": PROMPT, "max_tokens": 6, "ignore_eos": True,
                                                            "return_token_ids": True})
                self.assertEqual(status, 200, body)
                self.assertEqual(body["choices"][0]["token_ids"], greedy)  # temperature 0 from the file
                status, body = srv.post("/v1/completions", {"prompt": PROMPT, "ignore_eos": True})
                self.assertEqual(body["usage"]["completion_tokens"], 3)  # max_new_tokens from the file
            finally:
                srv.stop_cleanly()
            vllm = Server("--model", model, "--generation-config", "vllm", "--seed", "5")
            try:
                self.assertNotIn("default sampling from", vllm.log_text())
            finally:
                vllm.stop_cleanly()


class RequestFields(unittest.TestCase):
    def test_max_completion_tokens_on_completions(self):
        r = client.completions.create(model=MODEL_DIR, prompt=PROMPT, max_tokens=9,
                                      extra_body={"max_completion_tokens": 4, "ignore_eos": True})
        self.assertEqual(r.usage.completion_tokens, 4)

    def test_request_id_names_the_response(self):
        r = client.completions.create(model=MODEL_DIR, prompt=PROMPT, max_tokens=2,
                                      extra_body={"request_id": "tenant-a-42"})
        self.assertEqual(r.id, "cmpl-tenant-a-42")

    def test_ignored_fields_warn_once_naming_them(self):
        r = client.completions.create(model=MODEL_DIR, prompt=PROMPT, max_tokens=2,
                                      extra_body={"kv_transfer_params": {"x": 1}, "vllm_xargs": {"a": 1},
                                                  "priority": 0, "use_beam_search": False, "length_penalty": 1.0})
        self.assertEqual(len(r.choices), 1)
        lines = [ln for ln in server.log_text().splitlines() if "accepted but ignored" in ln]
        self.assertTrue(lines)
        self.assertIn("kv_transfer_params, length_penalty, vllm_xargs", lines[-1])  # the body's keys, sorted

    def test_fields_that_would_change_the_result_are_400(self):
        for extra, param in [({"priority": 3}, "priority"), ({"use_beam_search": True}, "use_beam_search"),
                             ({"guided_grammar": "root ::= item"}, "guided_grammar"),
                             ({"prompt_logprobs": 1}, "prompt_logprobs"),
                             ({"cache_salt": ""}, "cache_salt"), ({"logprobs": 6}, "logprobs"),
                             ({"truncate_prompt_tokens": 0}, "truncate_prompt_tokens"),
                             ({"no_such_field": 1}, "no_such_field")]:
            status, body = server.post("/v1/completions", {"prompt": PROMPT, "max_tokens": 2, **extra})
            self.assertEqual(status, 400, (extra, body))
            self.assertEqual(body["error"]["param"], param, body)
            if param == "priority":  # as vLLM: the flag that would allow it is named
                self.assertIn("--scheduling-policy priority", body["error"]["message"])

    def test_allowed_token_ids_logit_bias_and_bad_words_steer_sampling(self):
        allowed = [11, 12, 13]
        for seed in range(3):
            out = sample(server, temperature=1.0, seed=seed, allowed_token_ids=allowed, max_tokens=8)[0]
            self.assertTrue(set(out) <= set(allowed), out)
        # A +100 bias makes a token the greedy choice at every step; -100 removes the greedy one.
        self.assertEqual(sample(server, temperature=0, logit_bias={"77": 100})[0], [77] * 6)
        greedy = sample(server, temperature=0)[0]
        barred = sample(server, temperature=0, logit_bias={str(greedy[0]): -100})[0]
        self.assertNotEqual(barred[0], greedy[0])
        # The raw logprobs stay the model's, and a token it all but excludes is -9999, not -inf.
        r = client.completions.create(model=MODEL_DIR, prompt=PROMPT, max_tokens=3, temperature=0, logprobs=2,
                                      logit_bias={"77": 100})
        self.assertTrue(all(lp <= 0 for lp in r.choices[0].logprobs.token_logprobs))
        for bad in ({"logit_bias": {"77": 101}}, {"logit_bias": {"x": 1}}, {"logit_bias": {"5000": 1}},
                    {"allowed_token_ids": []}, {"allowed_token_ids": [5000]}, {"bad_words": [""]}):
            status, body = server.post("/v1/completions", {"prompt": PROMPT, "max_tokens": 2, **bad})
            self.assertEqual(status, 400, (bad, body))
            self.assertEqual(body["error"]["param"], next(iter(bad)), body)

    def test_bad_words_are_never_completed(self):
        # vLLM's rule: a word is barred as written and after a space. "a" and " a" are single
        # tokens of the DeepSeek-V3 tokenizer with ids inside the fixture's 1024.
        def ids(text):
            status, body = server.post("/tokenize", {"prompt": text, "add_special_tokens": False})
            self.assertEqual(status, 200, body)
            return body["tokens"]
        a, space_a = ids("a"), ids(" a")
        self.assertEqual((len(a), len(space_a)), (1, 1))
        bias = {str(a[0]): 100, str(space_a[0]): 99}
        self.assertEqual(sample(server, temperature=0, logit_bias=bias)[0], a * 6)
        out = sample(server, temperature=0, logit_bias=bias, bad_words=["a"])[0]
        self.assertFalse(set(out) & {a[0], space_a[0]}, out)
        # A word spelt in ids outside the model's vocabulary is a 400 naming the field.
        status, body = server.post("/v1/completions", {"prompt": PROMPT, "max_tokens": 2, "bad_words": [" !"]})
        self.assertEqual((status, body["error"]["param"]), (400, "bad_words"), body)

    def test_truncate_prompt_tokens_keeps_the_tail(self):
        long_prompt = [100 + i for i in range(20)] + PROMPT
        status, full = server.post("/v1/completions", {"prompt": long_prompt, "max_tokens": 4, "temperature": 0,
                                                       "truncate_prompt_tokens": len(PROMPT),
                                                       "return_token_ids": True, "ignore_eos": True})
        self.assertEqual(status, 200, full)
        self.assertEqual(full["usage"]["prompt_tokens"], len(PROMPT))
        self.assertEqual(full["choices"][0]["token_ids"], sample(server, temperature=0, max_tokens=4)[0])


if __name__ == "__main__":
    unittest.main()
