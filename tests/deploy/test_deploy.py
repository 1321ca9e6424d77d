"""deploy/: the alert rules pass `promtool check rules` and their rule tests (synthetic series in
deploy/prometheus/dsinfer-alerts.test.yml); every query of the Grafana dashboard is valid PromQL
(checked by promtool as a recording rule); and every series the dashboard and the alerts query
exists in the /metrics of a real `dsinfer serve` (tiny-v2-lite, a MoE model) after a request."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "server"))
from serverlib import DATA, Server, parse_samples  # noqa: E402

DEPLOY = os.path.join(HERE, "..", "..", "deploy")
RULES_DIR = os.path.join(DEPLOY, "prometheus")
DASHBOARD = os.path.join(DEPLOY, "grafana", "dsinfer.json")
# Series a server does not publish: Prometheus' own per target.
EXTERNAL = {"up"}
_NAME = re.compile(r"\b(dsinfer_[a-zA-Z0-9_]+|vllm:[a-zA-Z0-9_:]+|up)\b")


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def promtool(*args, cwd=None):
    exe = shutil.which("promtool")
    assert exe, "promtool not found: scripts/setup.sh installs it (Debian package prometheus)"
    return subprocess.run([exe, *args], capture_output=True, text=True, cwd=cwd)


def dashboard_exprs():
    d = json.loads(read(DASHBOARD))
    exprs = [t["expr"] for p in d["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in d["templating"]["list"] if v.get("definition")]
    return d, exprs


def alert_exprs():
    text = read(os.path.join(RULES_DIR, "dsinfer-alerts.yml"))
    # The rules' expr values (one line or a | block), enough to find the series they name.
    return re.findall(r"expr:\s*\|?\s*\n?((?:.+\n?)+?)\s*(?:for|labels):", text)


def as_promql(expr):
    """A dashboard query with Grafana's variables replaced the way Grafana would."""
    if expr.startswith("label_values("):  # a variable query: its series selector is the PromQL
        expr = re.match(r"label_values\((.*),\s*\w+\)$", expr).group(1)
    return (expr.replace("$__rate_interval", "1m").replace('=~"$model_name"', '=~".*"')
            .replace('"$layer"', '"1"'))


class Rules(unittest.TestCase):
    def test_check_rules(self):
        proc = promtool("check", "rules", "dsinfer-alerts.yml", cwd=RULES_DIR)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertIn("SUCCESS: 5 rules found", proc.stdout)

    def test_rule_tests_on_synthetic_series(self):
        proc = promtool("test", "rules", "dsinfer-alerts.test.yml", cwd=RULES_DIR)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        # Every alert has a test that fires it.
        tests = read(os.path.join(RULES_DIR, "dsinfer-alerts.test.yml"))
        for name in re.findall(r"- alert: (\w+)", read(os.path.join(RULES_DIR, "dsinfer-alerts.yml"))):
            self.assertRegex(tests, rf"alertname: {name}\n\s+exp_alerts:\n\s+- exp_labels", name)

    def test_dashboard_queries_are_promql(self):
        _, exprs = dashboard_exprs()
        self.assertGreater(len(exprs), 15)
        lines = ["groups:", "  - name: dashboard", "    rules:"]
        for i, e in enumerate(exprs):
            lines += [f"      - record: dashboard:query{i}", f"        expr: {json.dumps(as_promql(e))}"]
        with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
            f.write("\n".join(lines) + "\n")
        try:
            proc = promtool("check", "rules", f.name)
        finally:
            os.unlink(f.name)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)

    def test_dashboard_has_the_panels(self):
        d, _ = dashboard_exprs()
        titles = " | ".join(p["title"] for p in d["panels"])
        for want in ("Throughput", "Time to first token", "Inter-token latency", "Queue", "KV cache usage",
                     "Prefix cache hit rate", "Memory per device", "Expert load", "Step time by phase"):
            self.assertIn(want, titles)
        heat = [p for p in d["panels"] if p["type"] == "heatmap"]
        self.assertEqual(len(heat), 1)
        self.assertEqual(heat[0]["repeat"], "layer")  # one heatmap per MoE layer
        self.assertEqual(len({p["id"] for p in d["panels"]}), len(d["panels"]))


class QueriedSeriesExist(unittest.TestCase):
    def test_every_queried_series_is_served(self):
        _, exprs = dashboard_exprs()
        wanted = {n for e in exprs + alert_exprs() for n in _NAME.findall(e)} - EXTERNAL
        self.assertIn("dsinfer_expert_load_tokens", wanted)
        self.assertIn("dsinfer_time_to_first_token_seconds_bucket", wanted)
        self.assertIn("dsinfer_kv_cache_usage_ratio", wanted)  # from the alerts
        self.assertEqual(len(alert_exprs()), 5)
        server = Server("--model", os.path.join(DATA, "tiny-v2-lite"), "--kv-cache-memory", "8MiB")
        try:
            status, _ = server.post("/v1/completions", {"prompt": [5, 6, 7, 8], "max_tokens": 3, "ignore_eos": True})
            self.assertEqual(status, 200)
            for _ in range(500):  # the finished step's snapshot (see test_metrics.py)
                text = server.request("GET", "/metrics")[2].decode()
                samples = parse_samples(text)
                served = {name for name, _, _ in samples}
                if [v for name, _, v in samples if name == "dsinfer_num_requests_running"] == [0]:
                    break
                time.sleep(0.01)
        finally:
            server.stop_cleanly()
        self.assertEqual(sorted(wanted - served), [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
