"""`dsinfer bench` datasets, result files and plots against a real `dsinfer serve` (tiny-v2-lite, a
MoE model): ShareGPT files are read (their prompts are checked in bench_unit_test, as text
needs a tokenizer this fixture lacks) and bad ones named; prefix-repetition prompts share
their prefixes, which the server's prefix cache sees; --save-result writes vLLM's flat keys with
the values of our own; --goodput counts requests within the SLOs; a sweep writes one file per
point; `bench plot` draws them as SVG with the expected series and per-layer expert load."""
import glob
import json
import os
import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "server"))
from serverlib import BIN, DATA, Server  # noqa: E402

server = None
SVG = "{http://www.w3.org/2000/svg}"


def setUpModule():
    global server
    server = Server("--model", os.path.join(DATA, "tiny-v2-lite"), "--served-model-name", "org/tiny",
                    "--kv-cache-memory", "32MiB", "--block-size", "16", "--max-model-len", "1024")


def tearDownModule():
    if server:
        server.stop_cleanly()


def run_bench(*args, expect_ok=True):
    proc = subprocess.run([BIN, "bench", "--base-url", f"http://127.0.0.1:{server.port}", *args],
                          capture_output=True, text=True, timeout=600)
    if expect_ok and proc.returncode != 0:
        raise AssertionError(f"bench failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def saved(tmp, *args):
    """Runs the bench with --save-result into tmp; the one result it wrote."""
    run_bench("--save-result", "--result-dir", tmp, "--result-filename", "r.json", *args)
    with open(os.path.join(tmp, "r.json")) as f:
        return json.load(f)


class Datasets(unittest.TestCase):
    def test_sharegpt_errors_name_the_problem(self):
        proc = run_bench("--dataset-name", "sharegpt", "--num-prompts", "1", expect_ok=False)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("--dataset-path", proc.stderr)
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            f.write('{"not": "a list"}')
        try:
            proc = run_bench("--dataset-name", "sharegpt", "--dataset-path", f.name, expect_ok=False)
        finally:
            os.unlink(f.name)
        self.assertIn("JSON array of conversations", proc.stderr)

    def test_prefix_repetition_hits_the_prefix_cache(self):
        before = server.metrics()
        with tempfile.TemporaryDirectory() as tmp:
            r = saved(tmp, "--dataset-name", "prefix-repetition", "--prefix-repetition-prefix-len", "32",
                      "--prefix-repetition-suffix-len", "8", "--prefix-repetition-num-prefixes", "2",
                      "--prefix-repetition-output-len", "3", "--num-prompts", "10", "--concurrency", "1",
                      "--random-token-range", "2,1000")
        after = server.metrics()
        self.assertEqual(r["completed"], 10)
        self.assertEqual(r["input_lens"], [40] * 10)
        self.assertEqual(r["output_lens"], [3] * 10)
        # One at a time: every prompt after the first of its prefix finds the prefix's 2 full
        # blocks (32 tokens) cached: 8 of the 10.
        hits = after["dsinfer_prefix_cache_hits_total"] - before["dsinfer_prefix_cache_hits_total"]
        self.assertEqual(hits, 8 * 32)


class Results(unittest.TestCase):
    def test_vllm_keys_goodput_and_expert_load(self):
        with tempfile.TemporaryDirectory() as tmp:
            r = saved(tmp, "--num-prompts", "12", "--concurrency", "3", "--input-len", "20", "--output-len", "6",
                      "--random-token-range", "2,1000", "--goodput", "ttft:60000", "e2el:60000", "tpot:60000",
                      "--metrics-interval", "0.05")
        for key in ("date", "backend", "model_id", "num_prompts", "request_rate", "max_concurrency", "duration",
                    "completed", "failed", "total_input_tokens", "total_output_tokens", "request_throughput",
                    "request_goodput", "output_throughput", "total_token_throughput", "input_lens", "output_lens",
                    "ttfts", "itls"):
            self.assertIn(key, r)
        for name in ("ttft", "tpot", "itl", "e2el"):
            for stat in ("mean", "median", "std", "p50", "p90", "p95", "p99"):
                self.assertIn(f"{stat}_{name}_ms", r)
        # The flat keys are the nested figures under vLLM's names.
        self.assertEqual(r["mean_ttft_ms"], r["ttft_ms"]["mean"])
        self.assertEqual(r["median_ttft_ms"], r["ttft_ms"]["p50"])
        self.assertEqual(r["p99_itl_ms"], r["itl_ms"]["p99"])
        self.assertEqual(r["mean_e2el_ms"], r["e2e_ms"]["mean"])
        self.assertEqual(r["duration"], r["duration_s"])
        self.assertEqual(r["max_concurrency"], 3)
        self.assertEqual(r["model_id"], "org/tiny")
        self.assertEqual(r["output_lens"], [6] * 12)
        self.assertEqual(r["input_lens"], [20] * 12)
        self.assertEqual(len(r["ttfts"]), 12)
        self.assertAlmostEqual(1e3 * sum(r["ttfts"]) / 12, r["mean_ttft_ms"], places=6)
        self.assertEqual(sum(len(g) for g in r["itls"]), r["itl_ms"]["count"])
        # Generous SLOs: every request is good.
        self.assertEqual(r["goodput"], {"ttft": 60000, "tpot": 60000, "e2el": 60000})
        self.assertAlmostEqual(r["request_goodput"], r["request_throughput"])
        # Expert load from scrapes during the run: the MoE layers 1 and 2 of 8 experts.
        self.assertEqual(r["expert_load"]["layers"], [1, 2])
        self.assertEqual(r["expert_load"]["n_experts"], 8)
        self.assertGreater(len(r["expert_load"]["samples"]), 0)

    def test_goodput_counts_only_requests_within_the_slos(self):
        with tempfile.TemporaryDirectory() as tmp:
            r = saved(tmp, "--num-prompts", "6", "--concurrency", "2", "--input-len", "8", "--output-len", "4",
                      "--random-token-range", "2,1000", "--goodput", "ttft:0.000001")
        self.assertEqual(r["completed"], 6)
        self.assertEqual(r["request_goodput"], 0)  # no TTFT is under a nanosecond

    def test_bad_goodput_and_result_flags(self):
        for args, words in ((["--goodput", "ttft"], "ttft:MS"), (["--goodput", "latency:5"], "e2el:MS"),
                            (["--goodput", "ttft:abc"], "not a number"), (["--result-dir", "/tmp/x"], "--save-result"),
                            (["--concurrency", "1,x"], "concurrency"), (["--dataset-name", "nope"], "dataset-name")):
            proc = run_bench("--model", "m", *args, expect_ok=False)
            self.assertNotEqual(proc.returncode, 0, args)
            self.assertIn(words, proc.stderr, args)

    def test_sweep_and_plot(self):
        with tempfile.TemporaryDirectory() as tmp:
            proc = run_bench("--save-result", "--result-dir", tmp, "--num-prompts", "16", "--concurrency", "1,4",
                             "--input-len", "24", "--output-len", "8", "--random-token-range", "2,1000",
                             "--metrics-interval", "0.05")
            files = sorted(glob.glob(os.path.join(tmp, "dsinfer-infqps-concurrency*-tiny-*.json")))
            self.assertEqual(len(files), 2, os.listdir(tmp))
            results = []
            for path in files:
                with open(path) as f:
                    results.append(json.load(f))
            self.assertEqual(sorted(r["max_concurrency"] for r in results), [1, 4])
            self.assertIn("sweep", proc.stdout)
            out = os.path.join(tmp, "plot.svg")
            subprocess.run([BIN, "bench", "plot", *files, "--out", out], check=True, capture_output=True, timeout=60)
            root = ET.parse(out).getroot()
            bad = subprocess.run([BIN, "bench", "plot", os.path.join(tmp, "missing.json"), "--out", out],
                                 capture_output=True, text=True, timeout=60)
        self.assertEqual(root.tag, SVG + "svg")
        charts = {g.get("data-chart"): g for g in root.iter(SVG + "g") if g.get("class") == "chart"}
        self.assertEqual(set(charts), {"latency_vs_throughput", "ttft_cdf", "itl_cdf", "imbalance_over_time",
                                       "expert_load"})
        series = lambda chart: {p.get("data-series"): p for p in charts[chart].iter(SVG + "polyline")}  # noqa: E731
        latency = series("latency_vs_throughput")
        self.assertEqual(set(latency), {"p50 TTFT", "p99 TTFT", "p50 ITL", "p99 ITL", "p50 E2E"})
        for line in latency.values():
            self.assertEqual(len(line.get("points").split()), 2)  # one point per result
        self.assertEqual(set(series("ttft_cdf")), {"c=1 r=inf", "c=4 r=inf"})
        self.assertEqual(set(series("itl_cdf")), {"c=1 r=inf", "c=4 r=inf"})
        cells = [c for c in charts["expert_load"].iter(SVG + "rect") if c.get("class") == "cell"]
        self.assertEqual(sorted({(c.get("data-layer"), c.get("data-expert")) for c in cells}),
                         sorted((str(l), str(e)) for l in (1, 2) for e in range(8)))
        self.assertNotEqual(bad.returncode, 0)
        self.assertIn("missing.json", bad.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
