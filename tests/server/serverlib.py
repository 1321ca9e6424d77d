"""Starting a real `dsinfer serve` for the server tests, and small raw-HTTP helpers.

The binary comes from $DSINFER_BIN and the fixtures from $DSINFER_DATA (CTest sets both);
$DSINFER_DEVICE_ARGS (e.g. "--device cuda --dtype float32", scripts/device/run.sh) is added to
every serve, generate and logits command, and $DSINFER_SERVE_ARGS to every serve, so the same
tests run on another backend;
every server listens on a free loopback port and logs to a temporary file that is printed
when a test fails to start it.
"""
import http.client
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.environ.get("DSINFER_BIN", os.path.join(HERE, "..", "..", "build", "bin", "dsinfer"))
DATA = os.environ.get("DSINFER_DATA", os.path.join(HERE, "..", "data"))
DEVICE_ARGS = shlex.split(os.environ.get("DSINFER_DEVICE_ARGS", ""))
SERVE_ARGS = shlex.split(os.environ.get("DSINFER_SERVE_ARGS", ""))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A `dsinfer serve` process; `args` are its flags after --port.

    One model thread unless `args` say otherwise: the tests check behaviour, not speed, and a
    2-core machine shared with the test clients runs OpenMP's spinning threads badly."""

    def __init__(self, *args, ready_timeout=300):
        self.port = free_port()
        threads = [] if "--threads" in args else ["--threads", "1"]
        self.args = [BIN, "serve", "--host", "127.0.0.1", "--port", str(self.port), *threads, *DEVICE_ARGS, *SERVE_ARGS, *args]
        self.log = tempfile.NamedTemporaryFile(prefix="dsinfer-serve-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + ready_timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dsinfer serve exited with {self.proc.returncode}:\n{self.log_text()}")
            try:
                status, _, _ = self.request("GET", "/health", timeout=2)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.proc.kill()
        raise RuntimeError(f"dsinfer serve did not become healthy in {ready_timeout} s:\n{self.log_text()}")

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.port}/v1"

    def log_text(self):
        with open(self.log.name, encoding="utf-8", errors="replace") as f:
            return f.read()

    def request(self, method, path, body=None, headers=None, timeout=120):
        """One request on a fresh connection: (status, headers dict, body bytes)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body)
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def post(self, path, obj, headers=None, timeout=300):
        """POST JSON; (status, parsed JSON body or None)."""
        status, _, data = self.request("POST", path, obj, headers, timeout)
        try:
            return status, json.loads(data)
        except ValueError:
            return status, None

    def stream(self, path, obj, headers=None, timeout=300):
        """POST with stream=True; returns the list of parsed SSE events (ending with "[DONE]")."""
        status, _, data = self.request("POST", path, obj, headers, timeout)
        assert status == 200, (status, data[:500])
        return parse_sse(data)

    def metrics(self):
        status, _, data = self.request("GET", "/metrics")
        assert status == 200
        return parse_prometheus(data.decode())

    def stop(self, sig=signal.SIGTERM, timeout=120):
        """Signals the server and waits for it; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                stacks = thread_stacks(self.proc.pid)
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError(f"dsinfer serve did not exit within {timeout} s of signal {sig}\n"
                                   f"--- threads ---\n{stacks}\n--- log ---\n{self.log_text()[-5000:]}")
        return self.proc.returncode

    def stop_cleanly(self):
        """Stops the server with SIGTERM and fails (printing its log) unless it drained and exited 0."""
        code = self.stop()
        if code != 0:
            print(self.log_text(), file=sys.stderr)
        assert code == 0, f"dsinfer serve exited with {code}"

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def baseline_server(*args):
    """The "alone" reference for a batching test: one sequence at a time and no prefix cache,
    so every request is computed from scratch by itself. (An "alone" run on the server under
    test would reuse KV blocks its batched run cached: a wrong batched computation would then
    be part of its own reference.)"""
    return Server(*args, "--no-enable-prefix-caching", "--max-num-seqs", "1")


def thread_stacks(pid):
    """Every thread's backtrace (gdb), to show where a process hangs; '' without gdb."""
    try:
        out = subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex", "thread apply all bt 30"],
                             capture_output=True, text=True, timeout=60)
        return out.stdout[-20000:]
    except (OSError, subprocess.TimeoutExpired):
        return ""


def parse_sse(data):
    events = []
    for block in data.decode().split("\n\n"):
        block = block.strip()
        if not block:
            continue
        assert block.startswith("data: "), block
        payload = block[len("data: "):]
        events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[^"}]|"(?:[^"\\]|\\.)*")*\})?\s+(\S+)$')


_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
# Labels every series carries (which server, not which value): left out of parse_prometheus's keys.
BASE_LABELS = ("model_name", "engine")


def parse_samples(text):
    """[(name, {label: value}, float)] of every sample line, labels unescaped."""
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m, f"not a Prometheus sample line: {line!r}"
        labels = {k: re.sub(r'\\(.)', lambda e: "\n" if e.group(1) == "n" else e.group(1), v)
                  for k, v in _LABEL.findall(m.group(2) or "")}
        samples.append((m.group(1), labels, float(m.group(3))))
    return samples


def parse_prometheus(text):
    """{'name{labels}': value} of every sample; labels as written, except the model_name and
    engine labels every series carries."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m, f"not a Prometheus sample line: {line!r}"
        kept = [f'{k}="{v}"' for k, v in _LABEL.findall(m.group(2) or "") if k not in BASE_LABELS]
        samples[m.group(1) + ("{" + ",".join(kept) + "}" if kept else "")] = float(m.group(3))
    return samples


def generate_cli(model_dir, token_ids, max_tokens):
    """Greedy tokens of `dsinfer generate` (the engine without the server), with one thread
    like the test servers."""
    out = subprocess.run(
        [BIN, "generate", "--model", model_dir, "--tokens", ",".join(map(str, token_ids)),
         "--max-tokens", str(max_tokens), "--json", "--threads", "1", *DEVICE_ARGS],
        check=True, capture_output=True, text=True)
    return json.loads(out.stdout)["token_ids"]


def logits_cli(model_dir, token_ids):
    """`dsinfer logits` over `token_ids` (the engine without the server, one forward pass):
    one float32 row per position. model_dir None: the embedded default model."""
    sys.path.insert(0, os.path.join(HERE, "..", "engine"))
    import safetensors_io  # noqa: E402 (the engine tests' reader)
    model = [] if model_dir is None else ["--model", model_dir]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "logits.safetensors")
        subprocess.run([BIN, "--log-level", "warn", "logits", *model, "--tokens", ",".join(map(str, token_ids)),
                        "--out", out, "--threads", "1", *DEVICE_ARGS], check=True, capture_output=True, text=True)
        shape, flat = safetensors_io.read(out)["logits"]
    return [flat[i:i + shape[1]] for i in range(0, len(flat), shape[1])]


def raw_exchange(port, data, timeout=10, read_until_close=True):
    """Sends raw bytes and reads what comes back (until close, or the first read)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            chunks.append(chunk)
            if not read_until_close:
                break
        return b"".join(chunks)
