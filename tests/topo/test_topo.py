"""`dsinfer topo` as a user runs it: without an NVIDIA driver it says so and exits 0 (text and
JSON); on the fake NVML library (argv[1]) with mixed models over PCIe it prints the GPUs, the
link matrix, the placement of --tp/--ep ranks and the warnings. `dsinfer plan --gpus auto` reads
the same topology."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

BIN = os.environ.get("DSINFER_BIN", os.path.join(os.path.dirname(__file__), "..", "..", "build", "bin", "dsinfer"))
FAKE = sys.argv.pop(1) if len(sys.argv) > 1 else None

CONFIG = {"driver": "550.54.15", "nvml": "12.550.54.15", "cuda": 12040, "gpus": [
    {"name": "NVIDIA H100 80GB HBM3", "memory_gib": 79.6, "cc": [9, 0], "sm_mhz": 1980, "mem_mhz": 2619,
     "bus": "00000000:18:00.0", "numa": 0, "cpus": [0, 1, 2, 3]},
    {"name": "NVIDIA H100 80GB HBM3", "memory_gib": 79.6, "cc": [9, 0], "sm_mhz": 1980, "mem_mhz": 2619,
     "bus": "00000000:2A:00.0", "numa": 0, "cpus": [0, 1, 2, 3]},
    {"name": "NVIDIA A100-SXM4-40GB", "memory_gib": 39.4, "cc": [8, 0], "sm_mhz": 1410, "mem_mhz": 1215,
     "bus": "00000000:86:00.0", "numa": 1, "cpus": [4, 5, 6, 7]}],
    "links": [["X", "PIX", "SYS"], ["PIX", "X", "SYS"], ["SYS", "SYS", "X"]]}


def topo(*args, env=None):
    return subprocess.run([BIN, "topo", *args], capture_output=True, text=True, timeout=60, env=env)


class NoDriver(unittest.TestCase):
    def test_says_so_and_exits_0(self):
        proc = topo("--nvml-library", "/nonexistent/libnvidia-ml.so.1")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("No NVIDIA GPU found: cannot load /nonexistent/libnvidia-ml.so.1", proc.stdout)
        proc = topo("--json", "--tp", "8", "--nvml-library", "/nonexistent/libnvidia-ml.so.1")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        j = json.loads(proc.stdout)
        self.assertFalse(j["available"])
        self.assertEqual(j["gpus"], [])

    def test_default_library_starts_either_way(self):
        # This machine may or may not have a driver: the binary starts and exits 0 both ways.
        proc = topo()
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertTrue("GPU" in proc.stdout, proc.stdout)

    def test_plan_auto_without_gpus_names_the_problem(self):
        proc = subprocess.run([BIN, "plan", "--model", "deepseek-v2-lite", "--gpus", "auto", "--nvml-library",
                               "/nonexistent/libnvidia-ml.so.1"], capture_output=True, text=True, timeout=60)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("--gpus auto", proc.stderr)
        self.assertIn("give --gpus", proc.stderr)


@unittest.skipIf(FAKE is None, "needs the fake NVML library's path (CTest passes it)")
class FakeTopology(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        path = os.path.join(cls.tmp.name, "nvml.json")
        with open(path, "w") as f:
            json.dump(CONFIG, f)
        cls.env = dict(os.environ, FAKE_NVML_CONFIG=path)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_text(self):
        proc = topo("--nvml-library", FAKE, env=self.env)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        out = proc.stdout
        self.assertIn("3 GPUs (driver 550.54.15, CUDA 12.4", out)
        self.assertIn("NVIDIA A100-SXM4-40GB", out)
        self.assertIn("GPU0          X    PIX    SYS", out)
        self.assertIn("warning: mixed GPU models", out)
        self.assertIn("worst link SYS", out)
        self.assertIn("spans CPU sockets", out)
        self.assertIn("no FP8 tensor cores", out)

    def test_json_and_placement(self):
        proc = topo("--json", "--tp", "2", "--nvml-library", FAKE, env=self.env)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        j = json.loads(proc.stdout)
        self.assertTrue(j["available"])
        self.assertEqual([g["name"] for g in j["gpus"]], [g["name"] for g in CONFIG["gpus"]])
        self.assertEqual(j["links"], CONFIG["links"])
        self.assertEqual(j["gpus"][2]["cpu_affinity"], "4-7")
        self.assertEqual(j["placement"], {"tp": 2, "ep": 1, "rank_gpu": [0, 1]})
        # The H100 pair: same model, one socket, FP8; but only PCIe between them.
        self.assertEqual(len(j["warnings"]), 1, j["warnings"])
        self.assertIn("worst link PIX", j["warnings"][0])
        proc = topo("--tp", "4", "--nvml-library", FAKE, env=self.env)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("needs 4 GPUs; this machine has 3", proc.stderr)

    def test_plan_gpus_auto(self):
        proc = subprocess.run([BIN, "plan", "--model", "deepseek-v2-lite", "--gpus", "auto", "--nvml-library", FAKE,
                               "--json"], capture_output=True, text=True, timeout=60, env=self.env)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        j = json.loads(proc.stdout)
        # H100 80GB HBM3 is the table's H100-80GB; the A100-SXM4-40GB its A100-40GB.
        self.assertIn("2x H100-80GB", json.dumps(j))
        self.assertIn("A100-40GB", json.dumps(j))


if __name__ == "__main__":
    unittest.main(verbosity=2)
