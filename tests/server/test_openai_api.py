"""The OpenAI-compatible API of `dsinfer serve` through the official `openai` client and raw
HTTP, on the embedded default model (random weights, real DeepSeek-V3 tokenizer): text and
chat, streaming and not, n > 1, logprobs, stop strings and stop tokens, seeds, token-id
prompts, echo, usage, /tokenize, /metrics, and every kind of bad request."""
import concurrent.futures
import heapq
import json
import os
import sys
import unittest

import openai

from serverlib import HERE, Server, logits_cli

sys.path.insert(0, os.path.join(HERE, "..", "common"))
from parity import log_softmax  # noqa: E402

API_KEY = "test-key-123"
MAX_MODEL_LEN = 512
server = None
client = None
MODEL = "dsinfer-default"


def setUpModule():
    global server, client
    server = Server("--api-key", API_KEY, "--max-model-len", str(MAX_MODEL_LEN),
                    "--max-request-body-bytes", "1MiB", "--served-model-name", MODEL, "alias-name")
    client = openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0, timeout=300)


def tearDownModule():
    if server:
        server.stop_cleanly()


AUTH = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}


def post(path, body, headers=AUTH):
    return server.post(path, body, headers)


def complete(**kw):
    kw.setdefault("model", MODEL)
    return client.completions.create(**kw)


def greedy_ids(prompt, n_tokens):
    """Greedy output ids of a prompt, from the server (return_token_ids)."""
    status, body = post("/v1/completions", {"prompt": prompt, "max_tokens": n_tokens, "temperature": 0,
                                            "ignore_eos": True, "return_token_ids": True})
    assert status == 200, body
    return body["choices"][0]["token_ids"], body["choices"][0]["text"]


# The server's logprobs against log_softmax (float64) of `dsinfer logits` over prompt + output:
# the same float32 logits computed in another order (decode steps over the paged KV cache vs one
# forward pass), then logit - log_z formed in float32 at |logprob| ~8..12, where a float32 ulp
# is ~1e-6. Measured max |diff| 4.2e-6 on the embedded model; 1e-5 is ~10 ulps.
LOGPROB_TOLERANCE = 1e-5


def token_id(spelt):
    """The id of a logprobs token spelt `token_id:N` (return_tokens_as_token_ids)."""
    assert spelt.startswith("token_id:"), spelt
    return int(spelt[len("token_id:"):])


def check_logprobs(test, prompt_ids, positions, greedy):
    """positions: per output token, (token id, logprob, [(id, logprob), ...] of the top list).
    Every value must be log_softmax of the engine's logits at that position, the top list the
    k most likely tokens in order, and (greedy) the token the most likely one."""
    ids = prompt_ids + [tok for tok, _, _ in positions]
    rows = logits_cli(None, ids[:-1])[len(prompt_ids) - 1:]
    test.assertEqual(len(rows), len(positions))
    tol = LOGPROB_TOLERANCE
    worst = 0.0
    for i, ((tok, logprob, top), row) in enumerate(zip(positions, rows)):
        want = log_softmax(row)
        worst = max([worst, abs(logprob - want[tok])] + [abs(v - want[t]) for t, v in top])
        test.assertAlmostEqual(logprob, want[tok], delta=tol, msg=f"position {i}, token {tok}")
        best = heapq.nlargest(len(top) + 1, want)
        if greedy:
            test.assertGreaterEqual(want[tok], best[0] - tol, f"position {i}: {tok} is not the most likely token")
        test.assertEqual(len({t for t, _ in top}), len(top), f"position {i}: repeated tokens in {top}")
        for j, (t, v) in enumerate(top):
            test.assertAlmostEqual(v, want[t], delta=tol, msg=f"position {i}, top {j}: token {t}")
            # The j-th entry is the j-th most likely token (up to ties within the tolerance).
            test.assertAlmostEqual(want[t], best[j], delta=tol, msg=f"position {i}, top {j}: token {t}")
    print(f"logprobs of {len(positions)} positions: max |server - log_softmax(dsinfer logits)| {worst:.2e}")


class Completions(unittest.TestCase):
    def test_models(self):
        ids = [m.id for m in client.models.list().data]
        self.assertEqual(ids, [MODEL, "alias-name"])
        self.assertEqual(client.models.retrieve("alias-name").id, "alias-name")

    def test_text_completion(self):
        r = complete(prompt="The capital of France is", max_tokens=6, temperature=0,
                     extra_body={"ignore_eos": True})
        self.assertEqual(r.object, "text_completion")
        self.assertEqual(r.model, MODEL)
        self.assertTrue(r.id.startswith("cmpl-"))
        self.assertEqual(len(r.choices), 1)
        self.assertEqual(r.choices[0].finish_reason, "length")
        self.assertEqual(r.usage.completion_tokens, 6)
        status, tok = post("/tokenize", {"prompt": "The capital of France is"})
        self.assertEqual(status, 200)
        self.assertEqual(r.usage.prompt_tokens, tok["count"])
        self.assertEqual(r.usage.total_tokens, tok["count"] + 6)
        self.assertIsNotNone(r.usage.prompt_tokens_details)
        # Greedy is deterministic, and the text is the detokenized ids.
        r2 = complete(prompt="The capital of France is", max_tokens=6, temperature=0,
                      extra_body={"ignore_eos": True})
        self.assertEqual(r.choices[0].text, r2.choices[0].text)
        ids, text = greedy_ids("The capital of France is", 6)
        self.assertEqual(text, r.choices[0].text)
        status, detok = post("/detokenize", {"tokens": ids})
        self.assertEqual(detok["prompt"], text)

    def test_streaming_equals_whole(self):
        whole = complete(prompt="Once upon a time", max_tokens=10, temperature=0, extra_body={"ignore_eos": True})
        chunks = list(complete(prompt="Once upon a time", max_tokens=10, temperature=0, stream=True,
                               stream_options={"include_usage": True}, extra_body={"ignore_eos": True}))
        text = "".join(c.choices[0].text for c in chunks if c.choices)
        self.assertEqual(text, whole.choices[0].text)
        finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        self.assertEqual(finals, ["length"])
        self.assertEqual(chunks[-1].choices, [])
        self.assertEqual(chunks[-1].usage.completion_tokens, 10)
        self.assertEqual(chunks[-1].usage.prompt_tokens, whole.usage.prompt_tokens)
        # Without include_usage there is no usage chunk; the raw stream ends with [DONE].
        events = server.stream("/v1/completions", {"prompt": "Once upon a time", "max_tokens": 3, "stream": True,
                                                   "temperature": 0}, AUTH)
        self.assertEqual(events[-1], "[DONE]")
        self.assertTrue(all(e["choices"] for e in events[:-1]))

    def test_token_id_prompt_and_batch(self):
        status, tok = post("/tokenize", {"prompt": "Hello world"})
        by_text = complete(prompt="Hello world", max_tokens=5, temperature=0, extra_body={"ignore_eos": True})
        by_ids = complete(prompt=tok["tokens"], max_tokens=5, temperature=0, extra_body={"ignore_eos": True})
        self.assertEqual(by_ids.choices[0].text, by_text.choices[0].text)
        self.assertEqual(by_ids.usage.prompt_tokens, tok["count"])
        other = complete(prompt="Good night", max_tokens=5, temperature=0, extra_body={"ignore_eos": True})
        batch = complete(prompt=["Hello world", "Good night"], max_tokens=5, temperature=0,
                         extra_body={"ignore_eos": True})
        self.assertEqual([c.index for c in batch.choices], [0, 1])
        self.assertEqual(batch.choices[0].text, by_text.choices[0].text)
        self.assertEqual(batch.choices[1].text, other.choices[0].text)
        self.assertEqual(batch.usage.completion_tokens, 10)
        self.assertEqual(batch.usage.prompt_tokens, by_text.usage.prompt_tokens + other.usage.prompt_tokens)
        ids_batch = complete(prompt=[tok["tokens"], tok["tokens"]], max_tokens=5, temperature=0,
                             extra_body={"ignore_eos": True})
        self.assertEqual([c.text for c in ids_batch.choices], [by_text.choices[0].text] * 2)

    def test_echo(self):
        r = complete(prompt="Echo me", max_tokens=3, temperature=0, echo=True, extra_body={"ignore_eos": True})
        plain = complete(prompt="Echo me", max_tokens=3, temperature=0, extra_body={"ignore_eos": True})
        self.assertEqual(r.choices[0].text, "Echo me" + plain.choices[0].text)

    def test_n_and_seed(self):
        kw = dict(prompt="Pick a word:", max_tokens=12, temperature=1.0, n=3, seed=1234,
                  extra_body={"ignore_eos": True})
        a = complete(**kw)
        b = complete(**kw)
        self.assertEqual([c.index for c in a.choices], [0, 1, 2])
        self.assertEqual([c.text for c in a.choices], [c.text for c in b.choices])  # same seed, same output
        self.assertGreater(len({c.text for c in a.choices}), 1)  # seed + i per choice: they differ
        self.assertEqual(a.usage.completion_tokens, 36)
        c = complete(**{**kw, "seed": 99})
        self.assertNotEqual([x.text for x in c.choices], [x.text for x in a.choices])
        # Choice i of n with seed s is the single request with seed s + i.
        single = complete(**{**kw, "n": 1, "seed": 1235})
        self.assertEqual(single.choices[0].text, a.choices[1].text)

    def test_logprobs(self):
        r = complete(prompt="Numbers: one, two,", max_tokens=5, temperature=0, logprobs=3,
                     extra_body={"ignore_eos": True})
        lp = r.choices[0].logprobs
        self.assertEqual(len(lp.tokens), 5)
        self.assertEqual(len(lp.token_logprobs), 5)
        self.assertEqual(len(lp.top_logprobs), 5)
        self.assertEqual("".join(lp.tokens), r.choices[0].text)
        self.assertEqual(lp.text_offset[0], 0)
        for i in range(1, 5):
            self.assertEqual(lp.text_offset[i], lp.text_offset[i - 1] + len(lp.tokens[i - 1]))
        # The values: log_softmax of the engine's logits at each position (tokens spelt as ids,
        # so that two tokens with the same text stay apart).
        status, raw = post("/v1/completions", {"prompt": "Numbers: one, two,", "max_tokens": 5, "temperature": 0,
                                               "logprobs": 3, "ignore_eos": True, "return_token_ids": True,
                                               "return_tokens_as_token_ids": True})
        self.assertEqual(status, 200, raw)
        choice = raw["choices"][0]
        raw_lp = choice["logprobs"]
        self.assertEqual([token_id(t) for t in raw_lp["tokens"]], choice["token_ids"])
        self.assertEqual(raw_lp["token_logprobs"], lp.token_logprobs)  # the same request, the same numbers
        # A JSON object has no order (the server's is by key): sort by value.
        positions = [(tok, chosen, sorted(((token_id(t), v) for t, v in top.items()), key=lambda e: -e[1]))
                     for tok, chosen, top in zip(choice["token_ids"], raw_lp["token_logprobs"], raw_lp["top_logprobs"])]
        self.assertTrue(all(len(top) == 3 for _, _, top in positions))
        check_logprobs(self, choice["prompt_token_ids"], positions, greedy=True)
        # Streaming gives the same logprobs, chunk by chunk.
        chunks = list(complete(prompt="Numbers: one, two,", max_tokens=5, temperature=0, logprobs=3, stream=True,
                               extra_body={"ignore_eos": True}))
        streamed = [x for c in chunks if c.choices and c.choices[0].logprobs for x in c.choices[0].logprobs.token_logprobs]
        self.assertEqual(len(streamed), 5)
        for a, b in zip(streamed, lp.token_logprobs):
            self.assertAlmostEqual(a, b, places=5)
        # As token ids.
        status, body = post("/v1/completions", {"prompt": "Numbers: one, two,", "max_tokens": 3, "temperature": 0,
                                                "logprobs": 0, "ignore_eos": True, "return_tokens_as_token_ids": True,
                                                "return_token_ids": True})
        self.assertEqual(status, 200)
        self.assertEqual(body["choices"][0]["logprobs"]["tokens"],
                         [f"token_id:{t}" for t in body["choices"][0]["token_ids"]])

    def test_stop_strings(self):
        _, text = greedy_ids("Write a long sentence:", 16)
        # A stop string that first appears mid-output: the text ends right before it.
        for start in range(3, len(text) - 3):
            stop = text[start:start + 3]
            if text.find(stop) == start and stop.strip() and "\ufffd" not in stop:
                break
        else:
            # The embedded model and greedy decoding are fixed, so this is a broken test setup
            # (or a changed model), never a reason to pass without checking anything.
            self.fail(f"no usable stop string in the greedy output {text!r}: pick another prompt")
        r = complete(prompt="Write a long sentence:", max_tokens=16, temperature=0, stop=[stop, "zzzzq"],
                     extra_body={"ignore_eos": True})
        self.assertEqual(r.choices[0].text, text[:start])
        self.assertEqual(r.choices[0].finish_reason, "stop")
        self.assertEqual(r.choices[0].model_extra.get("stop_reason"), stop)
        self.assertLess(r.usage.completion_tokens, 16)
        chunks = list(complete(prompt="Write a long sentence:", max_tokens=16, temperature=0, stop=stop, stream=True,
                               extra_body={"ignore_eos": True}))
        self.assertEqual("".join(c.choices[0].text for c in chunks if c.choices), text[:start])
        inc = complete(prompt="Write a long sentence:", max_tokens=16, temperature=0, stop=stop,
                       extra_body={"ignore_eos": True, "include_stop_str_in_output": True})
        self.assertEqual(inc.choices[0].text, text[:start + 3])

    def test_stop_token_ids(self):
        ids, _ = greedy_ids("Count: 1 2 3", 8)
        stop_at = next(i for i in range(2, 8) if ids[i] not in ids[:i])
        status, body = post("/v1/completions", {"prompt": "Count: 1 2 3", "max_tokens": 8, "temperature": 0,
                                                "ignore_eos": True, "stop_token_ids": [ids[stop_at]],
                                                "return_token_ids": True})
        self.assertEqual(status, 200)
        choice = body["choices"][0]
        self.assertEqual(choice["token_ids"], ids[:stop_at + 1])  # the stop token is generated, not shown
        self.assertEqual(choice["finish_reason"], "stop")
        self.assertEqual(choice["stop_reason"], ids[stop_at])
        self.assertEqual(body["usage"]["completion_tokens"], stop_at + 1)


class Chat(unittest.TestCase):
    MESSAGES = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hi."}]

    def test_chat(self):
        r = client.chat.completions.create(model=MODEL, messages=self.MESSAGES, max_tokens=8, temperature=0,
                                           extra_body={"ignore_eos": True})
        self.assertEqual(r.object, "chat.completion")
        self.assertTrue(r.id.startswith("chatcmpl-"))
        self.assertEqual(r.choices[0].message.role, "assistant")
        self.assertEqual(r.choices[0].finish_reason, "length")
        self.assertEqual(r.usage.completion_tokens, 8)
        # The prompt is the chat template's rendering, BOS included once.
        status, tok = post("/tokenize", {"messages": self.MESSAGES})
        self.assertEqual(r.usage.prompt_tokens, tok["count"])
        self.assertEqual(tok["tokens"][0], 0)
        self.assertNotEqual(tok["tokens"][1], 0)
        # Streaming: the role first, then the same text.
        chunks = list(client.chat.completions.create(model=MODEL, messages=self.MESSAGES, max_tokens=8,
                                                     temperature=0, stream=True,
                                                     stream_options={"include_usage": True},
                                                     extra_body={"ignore_eos": True}))
        self.assertEqual(chunks[0].choices[0].delta.role, "assistant")
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        self.assertEqual(text, r.choices[0].message.content)
        self.assertEqual(chunks[-1].usage.total_tokens, r.usage.total_tokens)
        # Content as a list of text parts is joined.
        parts = [{"role": "system", "content": [{"type": "text", "text": "You are terse."}]},
                 {"role": "user", "content": [{"type": "text", "text": "Say hi."}]}]
        r2 = client.chat.completions.create(model=MODEL, messages=parts, max_tokens=8, temperature=0,
                                            extra_body={"ignore_eos": True})
        self.assertEqual(r2.choices[0].message.content, r.choices[0].message.content)

    def test_chat_logprobs_are_log_softmax(self):
        """Chat logprobs, greedy and sampled (n = 2, temperature 0.8: the raw distribution, not
        the tempered one), against log_softmax of the engine's logits at the same positions."""
        for temperature, n in ((0, 1), (0.8, 2)):
            with self.subTest(temperature=temperature):
                status, body = post("/v1/chat/completions", {
                    "messages": self.MESSAGES, "max_tokens": 4, "temperature": temperature, "n": n, "seed": 3,
                    "logprobs": True, "top_logprobs": 2, "ignore_eos": True, "return_token_ids": True,
                    "return_tokens_as_token_ids": True})
                self.assertEqual(status, 200, body)
                self.assertEqual(len(body["choices"]), n)
                for c in body["choices"]:
                    content = c["logprobs"]["content"]
                    self.assertEqual([token_id(e["token"]) for e in content], c["token_ids"])
                    positions = [(token_id(e["token"]), e["logprob"],
                                  [(token_id(t["token"]), t["logprob"]) for t in e["top_logprobs"]]) for e in content]
                    self.assertTrue(all(len(top) == 2 for _, _, top in positions))
                    check_logprobs(self, body["prompt_token_ids"], positions, greedy=temperature == 0)

    def test_chat_n_logprobs(self):
        r = client.chat.completions.create(model=MODEL, messages=self.MESSAGES, max_tokens=4, temperature=0.8, n=2,
                                           seed=7, logprobs=True, top_logprobs=2, extra_body={"ignore_eos": True})
        self.assertEqual(len(r.choices), 2)
        for c in r.choices:
            content = c.logprobs.content
            self.assertEqual(len(content), 4)
            self.assertEqual("".join(e.token for e in content), c.message.content)
            for e in content:
                self.assertEqual(len(e.top_logprobs), 2)
                self.assertEqual(bytes(e.bytes).decode("utf-8", "replace"), e.token)
                self.assertGreaterEqual(e.top_logprobs[0].logprob, e.top_logprobs[1].logprob)
        again = client.chat.completions.create(model=MODEL, messages=self.MESSAGES, max_tokens=4, temperature=0.8,
                                               n=2, seed=7, extra_body={"ignore_eos": True})
        self.assertEqual([c.message.content for c in again.choices], [c.message.content for c in r.choices])

    def test_tools_reach_template(self):
        tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
        r = client.chat.completions.create(model=MODEL, messages=self.MESSAGES, tools=tools, max_tokens=2,
                                           temperature=0)
        self.assertIn(r.choices[0].finish_reason, ("length", "stop"))
        # A conversation with an earlier tool call and its output renders.
        history = self.MESSAGES + [
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}]
        r = client.chat.completions.create(model=MODEL, messages=history, tools=tools, max_tokens=2, temperature=0)
        self.assertEqual(r.usage.completion_tokens, 2)


class BadRequests(unittest.TestCase):
    def check_error(self, status, body, want_status, param=None, words=()):
        self.assertEqual(status, want_status, body)
        self.assertIn("error", body)
        err = body["error"]
        self.assertEqual(set(err), {"message", "type", "param", "code"})
        self.assertEqual(err["code"], want_status)
        if param is not None:
            self.assertEqual(err["param"], param)
        for w in words:
            self.assertIn(w, err["message"])

    def test_malformed_json(self):
        status, _, data = server.request("POST", "/v1/completions", '{"prompt": "x", ', AUTH)
        self.check_error(status, json.loads(data), 400, words=["JSON"])
        status, _, data = server.request("POST", "/v1/completions", "", AUTH)
        self.check_error(status, json.loads(data), 400)
        status, _, data = server.request("POST", "/v1/completions", "[1, 2]", AUTH)
        self.check_error(status, json.loads(data), 400, words=["object"])

    def test_invalid_utf8(self):
        status, _, data = server.request("POST", "/v1/completions", b'{"prompt": "bad \xff\xfe bytes", "max_tokens": 2}',
                                         AUTH)
        self.check_error(status, json.loads(data), 400, words=["UTF-8"])

    def test_wrong_types(self):
        cases = [({"prompt": "x", "temperature": "hot"}, "temperature"),
                 ({"prompt": "x", "max_tokens": "5"}, "max_tokens"),
                 ({"prompt": "x", "max_tokens": 2.5}, "max_tokens"),
                 ({"prompt": "x", "stream": "yes"}, "stream"),
                 ({"prompt": "x", "stop": 5}, "stop"),
                 ({"prompt": "x", "n": 0}, "n"),
                 ({"prompt": "x", "top_p": 0}, "top_p"),
                 ({"prompt": "x", "logprobs": 50}, "logprobs"),
                 ({"prompt": 5}, "prompt"),
                 ({"prompt": [[1, 2], "x", 3]}, "prompt"),
                 ({"prompt": [1, -2]}, "prompt"),
                 ({"prompt": "x", "stream_options": {"include_usage": True}}, "stream_options")]
        for body, param in cases:
            with self.subTest(body=body):
                status, resp = post("/v1/completions", body)
                self.check_error(status, resp, 400, param=param)
        status, resp = post("/v1/chat/completions", {"messages": "hello"})
        self.check_error(status, resp, 400, param="messages")
        status, resp = post("/v1/chat/completions", {"messages": [{"role": "wizard", "content": "x"}]})
        self.check_error(status, resp, 400, param="messages")
        status, resp = post("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})
        self.check_error(status, resp, 400, param="top_logprobs")

    def test_unknown_and_unsupported_fields(self):
        status, resp = post("/v1/completions", {"prompt": "x", "temprature": 0.5})
        self.check_error(status, resp, 400, param="temprature", words=["temprature"])
        status, resp = post("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "echo_me": 1})
        self.check_error(status, resp, 400, param="echo_me")
        status, resp = post("/v1/completions", {"prompt": "x", "suffix": "tail"})
        self.check_error(status, resp, 400, param="suffix")
        status, resp = post("/v1/completions", {"prompt": "x", "logit_bias": {"5": 1000}})
        self.check_error(status, resp, 400, param="logit_bias")
        # Fields the API defines that change nothing here are accepted.
        status, resp = post("/v1/completions", {"prompt": "x", "max_tokens": 1, "user": "u1", "logit_bias": {}})
        self.assertEqual(status, 200, resp)

    def test_unknown_model(self):
        with self.assertRaises(openai.NotFoundError) as ctx:
            complete(model="no-such-model", prompt="x", max_tokens=1)
        self.assertEqual(ctx.exception.status_code, 404)
        status, resp = post("/v1/chat/completions", {"model": "gpt-4", "messages": [{"role": "user", "content": "x"}]})
        self.check_error(status, resp, 404, param="model", words=["gpt-4"])
        status, _, _ = server.request("GET", "/v1/models/gpt-4", headers=AUTH)
        self.assertEqual(status, 404)

    def test_empty_prompt(self):
        for body in ({"prompt": ""}, {"prompt": []}, {"prompt": [[]]}, {"prompt": ["a", ""]}):
            with self.subTest(body=body):
                status, resp = post("/v1/completions", body)
                self.check_error(status, resp, 400, param="prompt", words=["empty"])
        status, resp = post("/v1/chat/completions", {"messages": []})
        self.check_error(status, resp, 400, param="messages", words=["empty"])

    def test_prompt_longer_than_context(self):
        ids = [100 + i for i in range(MAX_MODEL_LEN + 88)]
        status, resp = post("/v1/completions", {"prompt": ids, "max_tokens": 4})
        self.check_error(status, resp, 400, param="prompt", words=[str(len(ids)), str(MAX_MODEL_LEN)])
        status, resp = post("/v1/completions", {"prompt": ids[:500], "max_tokens": 100})
        self.check_error(status, resp, 400, param="max_tokens", words=["500", "100", str(MAX_MODEL_LEN)])
        with self.assertRaises(openai.BadRequestError):
            complete(prompt=ids, max_tokens=1)

    def test_max_tokens_not_positive(self):
        for v in (0, -1):
            status, resp = post("/v1/completions", {"prompt": "x", "max_tokens": v})
            self.check_error(status, resp, 400, param="max_tokens")
            status, resp = post("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}],
                                                         "max_completion_tokens": v})
            self.check_error(status, resp, 400, param="max_completion_tokens")

    def test_token_outside_vocabulary(self):
        status, resp = post("/v1/completions", {"prompt": [5, 10 ** 6], "max_tokens": 1})
        self.check_error(status, resp, 400, param="prompt", words=["1000000", "vocabulary"])

    def test_body_too_large(self):
        big = json.dumps({"prompt": "x" * (2 << 20), "max_tokens": 1})
        status, _, data = server.request("POST", "/v1/completions", big, AUTH)
        self.check_error(status, json.loads(data), 413, words=["1048576"])

    def test_api_key(self):
        body = {"prompt": "x", "max_tokens": 1}
        status, resp = server.post("/v1/completions", body)
        self.check_error(status, resp, 401, words=["Bearer"])
        status, resp = server.post("/v1/completions", body, {"Authorization": "Bearer wrong"})
        self.check_error(status, resp, 401)
        status, _, _ = server.request("GET", "/v1/models")
        self.assertEqual(status, 401)
        with self.assertRaises(openai.AuthenticationError):
            openai.OpenAI(base_url=server.base_url, api_key="nope", max_retries=0).models.list()
        # Health and metrics are open, as in vLLM.
        self.assertEqual(server.request("GET", "/health")[0], 200)
        self.assertEqual(server.request("GET", "/metrics")[0], 200)

    def test_unknown_route_and_method(self):
        status, _, data = server.request("GET", "/v1/nothing-here", headers=AUTH)
        self.check_error(status, json.loads(data), 404)
        status, _, data = server.request("GET", "/v1/completions", headers=AUTH)
        self.check_error(status, json.loads(data), 405)

    def test_bad_requests_do_not_disturb_others(self):
        """A stream runs while every kind of bad request hits the server; it gets exactly the
        tokens it gets alone."""
        body = {"prompt": "A quiet stream", "max_tokens": 12, "temperature": 0, "ignore_eos": True,
                "return_token_ids": True}
        alone = post("/v1/completions", body)[1]["choices"][0]["token_ids"]
        bad = [("POST", "/v1/completions", '{"prompt": ', AUTH),
               ("POST", "/v1/completions", json.dumps({"prompt": "x", "max_tokens": -5}), AUTH),
               ("POST", "/v1/completions", b'{"prompt": "\xc3\x28"}', AUTH),
               ("POST", "/v1/completions", json.dumps({"prompt": "x"}), {}),
               ("POST", "/v1/chat/completions", json.dumps({"messages": [{"role": "user"}]}), AUTH),
               ("GET", "/nope", None, AUTH)]
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            good = pool.submit(server.stream, "/v1/completions", {**body, "stream": True}, AUTH)
            for _ in range(3):
                results = list(pool.map(lambda a: server.request(*a)[0], bad))
                self.assertTrue(all(400 <= s < 500 for s in results), results)
            events = good.result()
        streamed = [t for e in events[:-1] for c in e["choices"] for t in c.get("token_ids", [])]
        self.assertEqual(streamed, alone)


class Metrics(unittest.TestCase):
    def test_metrics(self):
        complete(prompt="metrics please", max_tokens=3, temperature=0, extra_body={"ignore_eos": True})
        m = server.metrics()
        self.assertGreaterEqual(m['dsinfer_http_requests_total{route="/v1/completions",status="200"}'], 1)
        self.assertGreaterEqual(m["dsinfer_time_to_first_token_seconds_count"], 1)
        self.assertGreaterEqual(m["dsinfer_e2e_request_latency_seconds_count"], 1)
        self.assertGreaterEqual(m["dsinfer_time_per_output_token_seconds_count"], 1)
        self.assertEqual(m['dsinfer_e2e_request_latency_seconds_bucket{le="+Inf"}'],
                         m["dsinfer_e2e_request_latency_seconds_count"])
        self.assertGreaterEqual(m["dsinfer_generation_tokens_total"], 3)
        self.assertGreaterEqual(m["dsinfer_prompt_tokens_total"], 1)
        self.assertGreater(m["dsinfer_kv_cache_num_blocks"], 0)
        for name in ("dsinfer_num_requests_running", "dsinfer_num_requests_waiting", "dsinfer_kv_cache_blocks_used",
                     "dsinfer_prefix_cache_hit_rate", "dsinfer_num_preemptions_total"):
            self.assertIn(name, m)
        status, headers, _ = server.request("GET", "/metrics")
        self.assertTrue(headers["content-type"].startswith("text/plain; version=0.0.4"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
