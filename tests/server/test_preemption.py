"""A KV cache too small for the load: the engine preempts (and later recomputes) sequences,
and every request still completes with exactly the tokens it gets alone (on a fresh server
with room to spare, one sequence at a time, prefix caching off)."""
import concurrent.futures
import os
import random
import unittest

from serverlib import DATA, Server, baseline_server

MODEL_DIR = os.path.join(DATA, "tiny-v2-lite")
# tiny-v2-lite: 3 layers x (64 latent + 16 rope) float32 = 960 bytes per token, 61440 per
# 64-token block: 12 blocks hold 768 tokens; 8 requests of 100 + 60 tokens need 24.
KV_BYTES = 12 * 61440
server = None


def setUpModule():
    global server
    server = Server("--model", MODEL_DIR, "--kv-cache-memory", str(KV_BYTES), "--max-num-seqs", "16")


def tearDownModule():
    if server:
        server.stop_cleanly()


def body(prompt, n_out, stream):
    return {"prompt": prompt, "max_tokens": n_out, "temperature": 0, "ignore_eos": True, "return_token_ids": True,
            "stream": stream}


class Preemption(unittest.TestCase):
    def test_tiny_cache_preempts_and_completes(self):
        rng = random.Random(11)
        jobs = [([rng.randrange(2, 1024) for _ in range(100 + i)], 60) for i in range(8)]

        def streamed(job):
            events = server.stream("/v1/completions", body(*job, True))
            return [t for e in events[:-1] for c in e["choices"] for t in c.get("token_ids", [])]

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            together = list(pool.map(streamed, jobs))
        m = server.metrics()
        self.assertGreater(m["dsinfer_num_preemptions_total"], 0, "the cache was meant to be too small")
        self.assertEqual(m["dsinfer_kv_cache_num_blocks"], 12)
        # Alone: on a baseline server (one sequence at a time, no prefix cache, a cache with room
        # to spare), so no KV computed under preemption is reused.
        baseline = baseline_server("--model", MODEL_DIR)
        try:
            for i, (job, ids) in enumerate(zip(jobs, together)):
                status, alone = baseline.post("/v1/completions", body(*job, False))
                self.assertEqual(status, 200, alone)
                self.assertEqual(alone["usage"]["prompt_tokens_details"]["cached_tokens"], 0)
                self.assertEqual(len(ids), 60)
                self.assertEqual(ids, alone["choices"][0]["token_ids"], f"request {i}")
            self.assertEqual(baseline.metrics()["dsinfer_num_preemptions_total"], 0)
        finally:
            baseline.stop_cleanly()


if __name__ == "__main__":
    unittest.main(verbosity=2)
