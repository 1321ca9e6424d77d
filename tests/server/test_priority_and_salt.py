"""vLLM's request priority and cache_salt against `dsinfer serve --scheduling-policy priority`
on the tiny-v2-lite fixture, through the official openai client and raw HTTP.

priority: with --max-num-seqs 1 a long stream holds the only slot while requests of mixed
priority queue behind it; once it is cancelled they run one at a time, lower values first and
equal ones by arrival. cache_salt: the prefix-cache hit counter of /metrics
(vllm:prefix_cache_hits_total) grows for a repeated prompt only when the salts are equal."""
import http.client
import json
import os
import threading
import time
import unittest

import openai

from serverlib import DATA, Server

MODEL_DIR = os.path.join(DATA, "tiny-v2-lite")
PROMPT = [5, 17, 300, 42, 9, 600, 77]

server = None
client = None


def setUpModule():
    global server, client
    server = Server(MODEL_DIR, "--scheduling-policy", "priority", "--max-num-seqs", "1", "--block-size", "16",
                    "--max-model-len", "4096")
    client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)


def tearDownModule():
    if server:
        server.stop_cleanly()


def wait_for(what, predicate, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


class Priority(unittest.TestCase):
    def test_queued_requests_complete_in_priority_order(self):
        # The slot holder: a stream far longer than the test, cancelled by closing its socket.
        holder = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        holder.request("POST", "/v1/completions", json.dumps(
            {"model": MODEL_DIR, "prompt": PROMPT, "max_tokens": 4000, "ignore_eos": True, "stream": True}),
            {"Content-Type": "application/json"})
        response = holder.getresponse()
        self.assertEqual(response.status, 200)
        response.fp.readline()  # its first event: it is running
        started, lock, threads = {}, threading.Lock(), []

        # The order the server ran them in, read from when each stream's first token arrived:
        # with one slot a request starts only after the one before it has sent all 64 tokens, so
        # a reader thread would have to stall for a whole request to invert two (reading when
        # each finished raced: the next 3-token request could finish before the thread of the
        # one before appended its name).
        def run(name, priority):
            first, usage = None, None
            for chunk in client.completions.create(model=MODEL_DIR, prompt=PROMPT, max_tokens=64, stream=True,
                                                   stream_options={"include_usage": True},
                                                   extra_body={"priority": priority, "ignore_eos": True}):
                if first is None:
                    first = time.monotonic()
                usage = chunk.usage or usage
            self.assertEqual(usage.completion_tokens, 64)
            with lock:
                started[name] = first

        queued = [("p3", 3), ("p1-first", 1), ("p-2", -2), ("p1-second", 1), ("p0", 0)]
        for k, (name, priority) in enumerate(queued):
            t = threading.Thread(target=run, args=(name, priority))
            t.start()
            threads.append(t)
            # One at a time into the queue, so that arrival order is the order above.
            wait_for(f"{k + 1} waiting", lambda: server.metrics()["vllm:num_requests_waiting"] == k + 1)
        holder.close()  # the holder is cancelled; the queue drains one request at a time
        for t in threads:
            t.join(60)
        order = sorted(started, key=started.get)
        self.assertEqual(order, ["p-2", "p0", "p1-first", "p1-second", "p3"])

    def test_priority_must_be_an_integer(self):
        status, body = server.post("/v1/completions", {"model": MODEL_DIR, "prompt": PROMPT, "max_tokens": 1,
                                                       "priority": "high"})
        self.assertEqual(status, 400, body)
        self.assertEqual(body["error"]["param"], "priority")


class CacheSalt(unittest.TestCase):
    @staticmethod
    def counters():
        m = server.metrics()
        return m["vllm:prefix_cache_queries_total"], m["vllm:prefix_cache_hits_total"]

    def run_prompt(self, prompt, salt=None):
        """The prefix-cache hits (tokens) of one request."""
        extra = {} if salt is None else {"cache_salt": salt}
        queries, hits = self.counters()
        r = client.completions.create(model=MODEL_DIR, prompt=prompt, max_tokens=1, extra_body=extra)
        self.assertEqual(r.usage.prompt_tokens, len(prompt))
        # The engine publishes its counters at the end of the step that answered: every request
        # queries its 48 full-block tokens, so wait for that before reading the hits.
        wait_for("the request's prefix-cache query", lambda: self.counters()[0] >= queries + 48, timeout=10)
        return self.counters()[1] - hits

    def test_equal_salts_share_cached_prefixes_and_others_do_not(self):
        prompt = [(7 * i + 3) % 1000 + 10 for i in range(50)]  # three full 16-token blocks (48 tokens)
        self.assertEqual(self.run_prompt(prompt, "tenant-a"), 0)  # first time: nothing cached
        self.assertEqual(self.run_prompt(prompt, "tenant-a"), 48)  # the same salt: every full block
        self.assertEqual(self.run_prompt(prompt, "tenant-b"), 0)  # another salt: none
        self.assertEqual(self.run_prompt(prompt), 0)  # no salt: none either
        self.assertEqual(self.run_prompt(prompt, "tenant-b"), 48)
        self.assertEqual(self.run_prompt(prompt), 48)
        self.assertEqual(self.run_prompt(prompt, "tenant-a"), 48)  # each tenant's blocks stay their own

    def test_empty_or_non_string_salt_is_400(self):
        for salt in ("", 5, ["a"]):
            status, body = server.post("/v1/completions", {"model": MODEL_DIR, "prompt": PROMPT, "max_tokens": 1,
                                                           "cache_salt": salt})
            self.assertEqual(status, 400, (salt, body))
            self.assertEqual(body["error"]["param"], "cache_salt")
            self.assertIn("non-empty string", body["error"]["message"])


if __name__ == "__main__":
    unittest.main()
