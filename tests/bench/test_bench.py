"""`dsinfer bench` against a real `dsinfer serve` (tiny-v2-lite fixture): fixed concurrency and
Poisson arrivals, completions and chat, random and file prompts; the result file's counts
must match what was asked and what the server's /metrics saw, and failures are counted."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "server"))
from serverlib import BIN, DATA, Server  # noqa: E402

server = None


def setUpModule():
    global server
    server = Server("--model", os.path.join(DATA, "tiny-v2-lite"), "--served-model-name", "tiny")


def tearDownModule():
    if server:
        assert server.stop() == 0


def bench(*args, expect_ok=True, port=None):
    with tempfile.TemporaryDirectory() as tmp:
        result_file = os.path.join(tmp, "result.json")
        proc = subprocess.run([BIN, "bench", "--base-url", f"http://127.0.0.1:{port or server.port}/v1",
                               "--result-file", result_file, *args], capture_output=True, text=True, timeout=600)
        if expect_ok and proc.returncode != 0:
            raise AssertionError(f"bench failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        with open(result_file) as f:
            return json.load(f), proc


def check_distribution(test, d, count):
    test.assertEqual(d["count"], count)
    test.assertLessEqual(d["min"], d["p50"])
    test.assertLessEqual(d["p50"], d["p90"])
    test.assertLessEqual(d["p90"], d["p99"])
    test.assertLessEqual(d["p99"], d["max"])
    test.assertGreater(d["mean"], 0)


class Bench(unittest.TestCase):
    def test_completions_fixed_concurrency(self):
        before = server.metrics()
        r, proc = bench("--num-prompts", "24", "--concurrency", "6", "--input-len", "40", "--output-len", "8",
                        "--random-token-range", "2,1024", "--seed", "3")
        after = server.metrics()
        self.assertEqual(r["model"], "tiny")  # asked /v1/models
        self.assertEqual(r["completed"], 24)
        self.assertEqual(r["failed"], 0)
        self.assertEqual(r["concurrency"], 6)
        self.assertEqual(r["total_input_tokens"], 24 * 40)   # token-id prompts: exact lengths
        self.assertEqual(r["total_output_tokens"], 24 * 8)   # ignore_eos: exact lengths
        self.assertEqual(after["dsinfer_generation_tokens_total"] - before["dsinfer_generation_tokens_total"], 24 * 8)
        check_distribution(self, r["ttft_ms"], 24)
        check_distribution(self, r["e2e_ms"], 24)
        check_distribution(self, r["tpot_ms"], 24)
        # One gap per text event after the first: at most one per token (a token that ends inside a
        # UTF-8 character sends no text of its own).
        self.assertLessEqual(r["itl_ms"]["count"], 24 * 7)
        self.assertGreater(r["itl_ms"]["count"], 0)
        self.assertGreater(r["e2e_ms"]["min"], r["ttft_ms"]["min"])
        self.assertAlmostEqual(r["request_throughput"], 24 / r["duration_s"], places=6)
        self.assertAlmostEqual(r["output_throughput"], 24 * 8 / r["duration_s"], places=6)
        # The server figures are the deltas of the server's own counters over the run: nothing
        # else runs on this server between our two scrapes and the bench's, so they are equal.
        steps = after["dsinfer_engine_steps_total"] - before["dsinfer_engine_steps_total"]
        self.assertGreater(steps, 0)
        self.assertEqual(r["server"]["steps"], steps)
        for key, phase in (("scheduler_ms_per_step", "schedule"), ("forward_ms_per_step", "forward"),
                           ("sampling_ms_per_step", "sampling")):
            counter = f'dsinfer_engine_step_seconds_total{{phase="{phase}"}}'
            want = 1e3 * (after[counter] - before[counter]) / steps
            self.assertGreater(want, 0, counter)  # every step schedules, runs the model and samples
            self.assertAlmostEqual(r["server"][key], want, delta=1e-9 * want, msg=key)
        self.assertIn("Successful requests:", proc.stdout)
        self.assertIn("TTFT", proc.stdout)

    def test_prompts_file(self):
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
            f.write(json.dumps({"prompt": [5, 6, 7, 8], "max_tokens": 3}) + "\n\n")
            f.write(json.dumps({"prompt": [9, 10], "max_tokens": 5}) + "\n")
        try:
            r, _ = bench("--prompts-file", f.name, "--num-prompts", "4", "--concurrency", "2")
        finally:
            os.unlink(f.name)
        self.assertEqual(r["completed"], 4)
        self.assertEqual(r["total_input_tokens"], 4 + 2 + 4 + 2)
        self.assertEqual(r["total_output_tokens"], 3 + 5 + 3 + 5)

    def test_failures_are_counted(self):
        # Token ids outside the fixture's vocabulary of 1024: every request is a 400.
        r, proc = bench("--num-prompts", "5", "--concurrency", "2", "--input-len", "4", "--output-len", "2",
                        "--random-token-range", "5000,6000", expect_ok=False)
        self.assertNotEqual(proc.returncode, 0)
        self.assertEqual(r["completed"], 0)
        self.assertEqual(r["failed"], 5)
        self.assertIn("HTTP 400", r["errors"][0])
        self.assertIn("vocabulary", r["errors"][0])
        # Half of them failing: a wrong model name on some is not possible per run, so use a
        # server that is not there for the whole run.
        proc = subprocess.run([BIN, "bench", "--base-url", "http://127.0.0.1:1", "--model", "x", "--num-prompts", "2"],
                              capture_output=True, text=True, timeout=60)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("Failed requests:            2", proc.stdout)

    def test_bad_arguments(self):
        for args, words in ((["--request-rate", "fast"], "request-rate"), (["--base-url", "https://x"], "https"),
                            (["--endpoint", "embeddings"], "endpoint"), (["--concurrency", "0"], "concurrency")):
            proc = subprocess.run([BIN, "bench", "--model", "m", *args], capture_output=True, text=True, timeout=60)
            self.assertNotEqual(proc.returncode, 0, args)
            self.assertIn(words, proc.stderr, args)


class BenchChat(unittest.TestCase):
    """Chat needs a model whose vocabulary holds the chat template's tokens: the embedded default."""

    def test_chat_poisson_with_varied_lengths(self):
        chat_server = Server("--max-model-len", "1024")
        try:
            r, _ = bench("--endpoint", "chat", "--num-prompts", "8", "--request-rate", "20", "--concurrency", "4",
                         "--input-len", "20", "--output-len", "4", "--random-range-ratio", "0.5", "--seed", "1",
                         port=chat_server.port)
        finally:
            self.assertEqual(chat_server.stop(), 0)
        self.assertEqual(r["completed"], 8)
        self.assertEqual(r["request_rate"], 20)
        self.assertEqual(r["model"], "dsinfer-default")
        # Text prompts of about a token per word, through the chat template: the server's count.
        self.assertGreater(r["total_input_tokens"], 8 * 10)
        self.assertLess(r["total_input_tokens"], 8 * 40)
        self.assertGreaterEqual(r["total_output_tokens"], 8 * 2)
        self.assertLessEqual(r["total_output_tokens"], 8 * 6)
        check_distribution(self, r["ttft_ms"], 8)


if __name__ == "__main__":
    unittest.main(verbosity=2)
