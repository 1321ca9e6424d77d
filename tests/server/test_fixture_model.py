"""`dsinfer serve` on the tiny-v2-lite fixture (float32 CPU engine, token-id prompts): greedy
tokens through the server equal `dsinfer generate` and the Hugging Face reference (tiny-v3-fp8
too); 64 concurrent streaming clients with mixed
prompt and output lengths each get exactly the tokens they get alone (on a fresh server, one
sequence at a time, prefix caching off); a shared prefix is
reported as cached and changes nothing; a client that disconnects mid-stream is cancelled and
its KV blocks freed (seen in /metrics)."""
import concurrent.futures
import json
import os
import random
import socket
import sys
import time
import unittest

from serverlib import DATA, HERE, Server, baseline_server, generate_cli

sys.path.insert(0, os.path.join(HERE, "..", "engine"))
import safetensors_io  # noqa: E402

MODEL_DIR = os.path.join(DATA, "tiny-v2-lite")
VOCAB = 1024
server = None


def setUpModule():
    global server
    # Two I/O threads: connections on different threads, each on its own strand.
    server = Server("--model", MODEL_DIR, "--max-num-seqs", "64", "--max-num-batched-tokens", "512",
                    "--http-threads", "2")


def tearDownModule():
    if server:
        server.stop_cleanly()


def request_body(prompt, max_tokens, stream=False):
    return {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "ignore_eos": True,
            "return_token_ids": True, "stream": stream}


def run_alone(prompt, max_tokens):
    status, body = server.post("/v1/completions", request_body(prompt, max_tokens))
    assert status == 200, body
    return body["choices"][0]["token_ids"], body


def run_streaming(prompt, max_tokens):
    events = server.stream("/v1/completions", request_body(prompt, max_tokens, stream=True))
    assert events[-1] == "[DONE]"
    ids = [t for e in events[:-1] for c in e["choices"] for t in c.get("token_ids", [])]
    finish = [c["finish_reason"] for e in events[:-1] for c in e["choices"] if c.get("finish_reason")]
    return ids, finish


def random_prompt(rng, n):
    return [rng.randrange(2, VOCAB) for _ in range(n)]


class FixtureModel(unittest.TestCase):
    def test_greedy_equals_generate(self):
        rng = random.Random(5)
        for n_prompt, n_out in ((7, 20), (70, 12)):
            prompt = random_prompt(rng, n_prompt)
            with self.subTest(n_prompt=n_prompt):
                served, body = run_alone(prompt, n_out)
                self.assertEqual(served, generate_cli(MODEL_DIR, prompt, n_out))
                self.assertEqual(body["choices"][0]["prompt_token_ids"], prompt)
                self.assertEqual(body["usage"]["prompt_tokens"], n_prompt)
                self.assertEqual(body["usage"]["completion_tokens"], n_out)

    def test_64_concurrent_streams_match_alone(self):
        rng = random.Random(64)
        jobs = [(random_prompt(rng, 1 + (i * 37) % 150), 1 + (i * 13) % 40) for i in range(64)]
        # Concurrent (everything batched together), then each alone on a baseline server: one
        # sequence at a time, no prefix cache, so nothing of the batched run is reused.
        with concurrent.futures.ThreadPoolExecutor(64) as pool:
            together = list(pool.map(lambda j: run_streaming(*j), jobs))
        baseline = baseline_server("--model", MODEL_DIR)
        try:
            for i, ((prompt, n_out), (ids, finish)) in enumerate(zip(jobs, together)):
                status, body = baseline.post("/v1/completions", request_body(prompt, n_out))
                self.assertEqual(status, 200, body)
                self.assertEqual(body["usage"]["prompt_tokens_details"]["cached_tokens"], 0)
                self.assertEqual(len(ids), n_out, f"request {i}")
                self.assertEqual(ids, body["choices"][0]["token_ids"],
                                 f"request {i}: prompt {len(prompt)} tokens, {n_out} out")
                self.assertEqual(finish, ["length"])
        finally:
            baseline.stop_cleanly()

    def test_shared_prefix_is_cached(self):
        rng = random.Random(7)
        first = random_prompt(rng, 150)
        run_alone(first, 8)
        second = first[:130] + random_prompt(rng, 20)
        ids, body = run_alone(second, 8)
        block = 64
        self.assertEqual(body["usage"]["prompt_tokens_details"]["cached_tokens"], 130 // block * block)
        self.assertEqual(ids, generate_cli(MODEL_DIR, second, 8))
        m = server.metrics()
        self.assertGreater(m["dsinfer_prefix_cache_hits_total"], 0)
        self.assertGreater(m["dsinfer_prefix_cache_hit_rate"], 0)

    def test_disconnect_mid_stream_frees_blocks(self):
        before = server.metrics()
        aborted_before = before.get('dsinfer_request_success_total{finished_reason="abort"}', 0)
        body = request_body(random_prompt(random.Random(3), 100), 50000, stream=True)
        payload = json.dumps(body).encode()
        s = socket.create_connection(("127.0.0.1", server.port), timeout=60)
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload)
        received = b""
        while received.count(b"data: ") < 5:
            chunk = s.recv(65536)
            self.assertTrue(chunk, "the server closed the stream early")
            received += chunk
        m = server.metrics()
        self.assertEqual(m["dsinfer_num_requests_running"], 1)
        self.assertGreaterEqual(m["dsinfer_kv_cache_blocks_used"], 2)  # 100 prompt tokens + output, 64 per block
        s.close()
        deadline = time.time() + 20
        while time.time() < deadline:
            m = server.metrics()
            if m["dsinfer_num_requests_running"] == 0 and m["dsinfer_kv_cache_blocks_used"] == 0:
                break
            time.sleep(0.05)
        self.assertEqual(m["dsinfer_num_requests_running"], 0)
        self.assertEqual(m["dsinfer_kv_cache_blocks_used"], 0)
        self.assertEqual(m['dsinfer_request_success_total{finished_reason="abort"}'], aborted_before + 1)
        # It stopped long before its 50000 tokens.
        self.assertLess(m["dsinfer_generation_tokens_total"] - before["dsinfer_generation_tokens_total"], 25000)


def reference_greedy(model_dir, k):
    ref = safetensors_io.read(os.path.join(model_dir, "reference.safetensors"))
    return ref[f"prompt{k}.input_ids"][1], ref[f"prompt{k}.greedy_ids"][1]


class Reference(unittest.TestCase):
    """The greedy tokens the Hugging Face reference appends (tests/data/README.md)."""

    def check(self, srv, model_dir):
        for k in (1, 2, 3):
            prompt, want = reference_greedy(model_dir, k)
            with self.subTest(prompt=k):
                status, body = srv.post("/v1/completions", request_body(prompt, len(want)))
                self.assertEqual(status, 200, body)
                self.assertEqual(body["choices"][0]["token_ids"], want)

    def test_tiny_v2_lite(self):
        self.check(server, MODEL_DIR)

    def test_tiny_v3_fp8(self):
        v3 = os.path.join(DATA, "tiny-v3-fp8")
        srv = Server("--model", v3)
        try:
            self.check(srv, v3)
        finally:
            self.assertEqual(srv.stop(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
