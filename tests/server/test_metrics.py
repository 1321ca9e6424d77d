"""/metrics of a real `dsinfer serve` (tiny-v2-lite, float32 CPU engine) after requests whose sizes
we chose: every count equals what was sent, vLLM's twins equal ours, every series carries
model_name, the expert-load window adds up to the tokens the model ran, `promtool check metrics`
finds nothing but the colons of vLLM's names, and HEAD answers like GET without a body."""
import json
import os
import random
import shutil
import subprocess
import time
import unittest

from serverlib import DATA, Server, parse_prometheus, parse_samples

MODEL_DIR = os.path.join(DATA, "tiny-v2-lite")
NAME = 'obs "model"'  # a quote, to check label escaping end to end
BLOCK = 16
CONFIG = json.load(open(os.path.join(MODEL_DIR, "config.json")))


def promtool_problems(text):
    """`promtool check metrics` on text: its complaints, one per line."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: scripts/setup.sh installs it (Debian package prometheus)"
    proc = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    problems = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert proc.returncode == 0 or problems, proc
    return problems


class Metrics(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server("--model", MODEL_DIR, "--served-model-name", NAME, "--kv-cache-memory", "8MiB",
                            "--block-size", str(BLOCK))

    @classmethod
    def tearDownClass(cls):
        cls.server.stop_cleanly()

    def complete(self, prompt, max_tokens):
        status, body = self.server.post("/v1/completions", {
            "prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "ignore_eos": True})
        self.assertEqual(status, 200, body)
        return body

    def test_counts_match_what_was_sent(self):
        rng = random.Random(13)
        # Distinct prompts (no shared full block: no prefix hits), then one of 2 full blocks + 3
        # sent twice: the second finds its 2 blocks cached.
        prompts = [[rng.randrange(2, 1000) for _ in range(n)] for n in (5, 9, 17, 30)]
        outputs = [4, 1, 6, 3]
        shared = [rng.randrange(2, 1000) for _ in range(2 * BLOCK + 3)]
        for p, n in zip(prompts, outputs):
            self.complete(p, n)
        for _ in range(2):
            self.complete(shared, 2)
        prompts += [shared, shared]
        outputs += [2, 2]
        n_requests = len(prompts)
        sent_prompt = sum(map(len, prompts))
        hits = 2 * BLOCK
        # The cache is looked up in whole blocks, and never for the last prompt token (it must be
        # computed for its logits): a query covers (len - 1) // BLOCK blocks.
        queried = sum((len(p) - 1) // BLOCK * BLOCK for p in prompts)

        # A response can leave before the engine publishes the step that ended it: scrape once
        # the engine shows nothing running (that step's snapshot, all counters in it).
        for _ in range(500):
            text = self.server.request("GET", "/metrics")[2].decode()
            m = parse_prometheus(text)
            if m["dsinfer_num_requests_running"] == 0 and m["dsinfer_num_requests_waiting"] == 0:
                break
            time.sleep(0.01)
        for name in ("dsinfer", "vllm:"):
            sep = "_" if name == "dsinfer" else ""
            g = lambda s: m[f"{name}{sep}{s}"]  # noqa: E731
            self.assertEqual(g("prompt_tokens_total"), sent_prompt - hits)  # computed: hits excluded
            self.assertEqual(g("generation_tokens_total"), sum(outputs))
            self.assertEqual(g("prefix_cache_queries_total"), queried)
            self.assertEqual(g("prefix_cache_hits_total"), hits)
            self.assertEqual(g("num_requests_running"), 0)
            self.assertEqual(g("num_requests_waiting"), 0)
            self.assertEqual(m[f'{name}{sep}request_success_total{{finished_reason="length"}}'], n_requests)
            self.assertEqual(g("request_prompt_tokens_sum"), sent_prompt)
            self.assertEqual(g("request_prompt_tokens_count"), n_requests)
            self.assertEqual(g("request_generation_tokens_sum"), sum(outputs))
            for h in ("time_to_first_token_seconds", "e2e_request_latency_seconds", "request_queue_time_seconds",
                      "request_prefill_time_seconds", "request_decode_time_seconds",
                      "request_inference_time_seconds"):
                self.assertEqual(g(h + "_count"), n_requests, h)
                self.assertEqual(g(h + '_bucket{le="+Inf"}'), n_requests, h)
            # One token per step and event: a gap between each two consecutive tokens.
            self.assertEqual(g("inter_token_latency_seconds_count"), sum(n - 1 for n in outputs))
        self.assertEqual(m["vllm:kv_cache_usage_perc"], 0)
        # A request's phases add up: queue + inference = e2e up to the last event's delivery.
        self.assertLessEqual(m["dsinfer_request_queue_time_seconds_sum"] + m["dsinfer_request_inference_time_seconds_sum"],
                             m["dsinfer_e2e_request_latency_seconds_sum"] + 1e-9)
        self.assertAlmostEqual(m["dsinfer_request_inference_time_seconds_sum"],
                               m["dsinfer_request_prefill_time_seconds_sum"] + m["dsinfer_request_decode_time_seconds_sum"],
                               delta=1e-6)

        # Memory: the KV pool is n_blocks x block x (latent + rotary key) x layers x 4 bytes (f32).
        per_token = (CONFIG["kv_lora_rank"] + CONFIG["qk_rope_head_dim"]) * CONFIG["num_hidden_layers"] * 4
        self.assertEqual(m['dsinfer_device_memory_bytes{device="cpu",kind="kv_cache"}'],
                         m["dsinfer_kv_cache_num_blocks"] * BLOCK * per_token)
        self.assertGreater(m['dsinfer_device_memory_bytes{device="cpu",kind="weights"}'], 0)
        self.assertGreater(m['dsinfer_device_memory_bytes{device="cpu",kind="workspace"}'], 0)
        self.assertEqual(m['dsinfer_engine_step_seconds_total{phase="communication"}'], 0)
        for phase in ("schedule", "forward", "sampling"):
            self.assertGreater(m[f'dsinfer_engine_step_seconds_total{{phase="{phase}"}}'], 0, phase)

        # Expert load: every step is in the window (fewer than its 64), so each MoE layer's row
        # sums to top_k x the tokens the model ran: prompts computed plus fed-back tokens.
        steps = m["dsinfer_engine_steps_total"]
        self.assertLessEqual(steps, 64)
        self.assertEqual(m["dsinfer_expert_load_window_steps"], steps)
        ran = (sent_prompt - hits) + sum(n - 1 for n in outputs)
        moe_layers = [l for l in range(CONFIG["num_hidden_layers"]) if l >= CONFIG["first_k_dense_replace"]]
        E = CONFIG["n_routed_experts"]
        sum_max = sum_mean = 0
        for layer in moe_layers:
            row = [m[f'dsinfer_expert_load_tokens{{layer="{layer}",expert="{e}"}}'] for e in range(E)]
            self.assertEqual(sum(row), CONFIG["num_experts_per_tok"] * ran, layer)
            self.assertAlmostEqual(m[f'dsinfer_expert_load_imbalance{{layer="{layer}"}}'], max(row) * E / sum(row))
            sum_max += max(row)
            sum_mean += sum(row) / E
        self.assertNotIn('dsinfer_expert_load_imbalance{layer="0"}', m)  # the dense first layer
        self.assertAlmostEqual(m["dsinfer_expert_load_imbalance_overall"], sum_max / sum_mean)

        # Every series names the model; vLLM's also engine="0".
        for name, labels, _ in parse_samples(text):
            self.assertEqual(labels.get("model_name"), NAME, name)
            if name.startswith("vllm:"):
                self.assertEqual(labels.get("engine"), "0", name)

        # promtool: vLLM's names have colons, which its linter reserves for recording rules;
        # they are valid names, and vLLM's dashboards need them as they are. Nothing else.
        problems = promtool_problems(text)
        self.assertTrue(any("vllm:" in p for p in problems))
        self.assertEqual([p for p in problems if not (p.startswith("vllm:") and "should not contain ':'" in p)], [])

    def test_head_answers_like_get_without_a_body(self):
        for path in ("/metrics", "/health", "/v1/models"):
            get_status, get_headers, get_body = self.server.request("GET", path)
            status, headers, body = self.server.request("HEAD", path)
            self.assertEqual((status, body), (get_status, b""), path)
            self.assertEqual(headers["content-type"], get_headers["content-type"], path)


if __name__ == "__main__":
    unittest.main(verbosity=2)
