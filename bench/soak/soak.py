#!/usr/bin/env python3
"""Soak test of `dsinfer serve`: N concurrent streaming clients for T seconds, bounded in count
and time, on 127.0.0.1 only. Reports errors by kind, p50/p99 of TTFT, inter-token latency and
end-to-end latency, and the server's resident memory sampled over time (/proc/PID/status).

Starts `dsinfer serve` on the embedded demo model (or any --serve-arg), unless --base-url names
a server already running (then --server-pid gives its RSS). Each client loops on one
keep-alive connection: a streaming completion with a random token-id prompt and
`ignore_eos`, so every request must return exactly max_tokens tokens and end with [DONE];
anything else is an error of a named kind. At the deadline no new request starts; those in
flight get --grace seconds, then are cut off (counted apart, not as errors).

  python3 bench/soak/soak.py                              # 1000 streams, 600 s (the long soak)
  nice -n 10 python3 bench/soak/soak.py --streams 100 --duration 60

Standard library only. See docs/bench.md ("Soak").
"""
import argparse
import asyncio
import json
import os
import random
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

MAX_STREAMS = 5000       # bounds: a soak, not a way to exhaust the machine
MAX_DURATION_S = 3600
LOOPBACK = ("127.0.0.1", "localhost")


def parse_args():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--streams", type=int, default=1000, help="concurrent streaming clients (default 1000)")
    p.add_argument("--duration", type=float, default=600, help="seconds during which requests start (default 600)")
    p.add_argument("--grace", type=float, default=60, help="seconds in-flight requests get after the deadline")
    p.add_argument("--input-len", default="16,128", help="prompt tokens, LOW,HIGH (default 16,128)")
    p.add_argument("--output-len", default="8,64", help="max_tokens, LOW,HIGH (default 8,64)")
    p.add_argument("--token-range", default="1000,100000",
                   help="prompt token ids drawn from [LOW, HIGH) (default 1000,100000: inside the demo vocabulary)")
    p.add_argument("--request-timeout", type=float, default=300, help="seconds one request may take")
    p.add_argument("--sample-interval", type=float, default=5, help="seconds between RSS and /metrics samples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--base-url", help="a running server (http://127.0.0.1:PORT); default: start one")
    p.add_argument("--server-pid", type=int, help="with --base-url: the server's pid, for its RSS")
    p.add_argument("--dsinfer", default=os.path.join(here, "..", "..", "build", "bin", "dsinfer"),
                   help="the binary to start (default build/bin/dsinfer)")
    p.add_argument("--serve-arg", action="append", default=[],
                   help="extra `dsinfer serve` flag (repeat; e.g. --serve-arg=--max-num-seqs=512)")
    p.add_argument("--result-file", help="write the figures as JSON here")
    a = p.parse_args()
    if not 1 <= a.streams <= MAX_STREAMS:
        p.error(f"--streams {a.streams}: 1..{MAX_STREAMS}")
    if not 0 < a.duration <= MAX_DURATION_S:
        p.error(f"--duration {a.duration}: (0, {MAX_DURATION_S}] seconds")
    if not 0 <= a.grace <= 600:
        p.error(f"--grace {a.grace}: 0..600 seconds")
    if a.sample_interval <= 0:
        p.error("--sample-interval must be positive")
    for name in ("input_len", "output_len", "token_range"):
        try:
            lo, hi = (int(x) for x in getattr(a, name).split(","))
        except ValueError:
            p.error(f"--{name.replace('_', '-')} '{getattr(a, name)}': expected LOW,HIGH")
        if not 0 < lo <= hi:
            p.error(f"--{name.replace('_', '-')} '{getattr(a, name)}': need 0 < LOW <= HIGH")
        setattr(a, name, (lo, hi))
    if a.base_url:
        u = urllib.parse.urlparse(a.base_url)
        if u.scheme != "http" or u.hostname not in LOOPBACK or not u.port:
            p.error(f"--base-url {a.base_url}: only http://127.0.0.1:PORT (a soak stays on this machine)")
        a.port = u.port
    elif a.server_pid:
        p.error("--server-pid goes with --base-url")
    return a


# ---------------------------------------------------------------- the server

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StartedServer:
    """`dsinfer serve` started here; its log goes to a temporary file."""

    def __init__(self, binary, extra):
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile(prefix="dsinfer-soak-", suffix=".log", delete=False)
        args = [binary, "serve", "--host", "127.0.0.1", "--port", str(self.port), *extra]
        print("starting:", " ".join(args), f"(log {self.log.name})", flush=True)
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid

    def stop(self):
        """SIGTERM (drain) and wait; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def rss_kib(pid):
    """(VmRSS, VmHWM) in KiB, or None when the process is gone or unreadable."""
    try:
        with open(f"/proc/{pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])
    except (OSError, KeyError, ValueError):
        return None


# ---------------------------------------------------------------- HTTP/1.1 over asyncio

class ProtocolError(Exception):
    pass


async def read_head(reader):
    """Status code and lower-cased headers of one response."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise ProtocolError(f"bad status line {lines[0][:80]!r}")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return int(parts[1]), headers


async def body_chunks(reader, headers):
    """The body's bytes as they arrive (chunked, Content-Length, or until close)."""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return
            data = await reader.readexactly(size + 2)
            yield data[:-2]
    elif "content-length" in headers:
        n = int(headers["content-length"])
        if n:
            yield await reader.readexactly(n)
    else:
        while data := await reader.read(65536):
            yield data


async def http_get(port, path, timeout=10):
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        async def whole():
            status, headers = await read_head(reader)
            return status, b"".join([c async for c in body_chunks(reader, headers)])
        return await asyncio.wait_for(whole(), timeout)
    finally:
        writer.close()


def gauges(prometheus_text):
    out = {}
    for line in prometheus_text.splitlines():
        name, _, value = line.partition(" ")
        if name in ("dsinfer_num_requests_running", "dsinfer_num_requests_waiting", "dsinfer_kv_cache_blocks_used",
                    "dsinfer_http_connections_open"):
            out[name] = float(value)
    return out


# ---------------------------------------------------------------- the load

class Stats:
    def __init__(self):
        self.ok = 0
        self.errors = {}          # kind -> count
        self.error_examples = {}  # kind -> first message
        self.cut_at_end = 0
        self.ttft, self.itl, self.e2e = [], [], []
        self.tokens = 0

    def error(self, kind, message):
        self.errors[kind] = self.errors.get(kind, 0) + 1
        self.error_examples.setdefault(kind, message[:300])


async def one_request(reader, writer, body, max_tokens, stats):
    """One streaming completion on an open connection; True if the connection can be reused."""
    payload = json.dumps(body).encode()
    writer.write(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload)
    start = time.monotonic()
    status, headers = await read_head(reader)
    pending, events, token_times, usage, finish = b"", 0, [], None, None
    done = False
    async for chunk in body_chunks(reader, headers):
        pending += chunk
        while b"\n\n" in pending:
            event, pending = pending.split(b"\n\n", 1)
            event = event.strip()
            if status != 200:
                continue
            if not event.startswith(b"data: "):
                raise ProtocolError(f"not an SSE event: {event[:80]!r}")
            data = event[6:]
            if data == b"[DONE]":
                done = True
                continue
            j = json.loads(data)
            if "error" in j:
                stats.error("error_event", json.dumps(j["error"]))
                return False
            events += 1
            if j.get("usage"):
                usage = j["usage"]
            for c in j.get("choices", []):
                if c.get("text") or c.get("token_ids"):
                    token_times.append(time.monotonic())
                finish = c.get("finish_reason") or finish
    if status != 200:
        stats.error(f"http_{status}", pending.decode("utf-8", "replace"))
        return headers.get("connection", "").lower() != "close"
    n_tokens = usage["completion_tokens"] if usage else None
    if not done:
        stats.error("no_done", f"stream ended without [DONE] after {events} events")
    elif n_tokens != max_tokens or finish != "length":
        stats.error("wrong_output", f"{n_tokens} tokens, finish {finish}, asked {max_tokens} with ignore_eos")
    elif not token_times:
        stats.error("no_tokens", "no event carried text or token ids")
    else:
        stats.ok += 1
        stats.tokens += n_tokens
        stats.ttft.append(token_times[0] - start)
        stats.itl.extend(b - a for a, b in zip(token_times, token_times[1:]))
        stats.e2e.append(time.monotonic() - start)
    return headers.get("connection", "").lower() != "close"


async def client(index, a, port, deadline, stats):
    rng = random.Random(a.seed * 1_000_003 + index)
    reader = writer = None
    try:
        while time.monotonic() < deadline:
            n_in = rng.randint(*a.input_len)
            n_out = rng.randint(*a.output_len)
            body = {"prompt": [rng.randrange(*a.token_range) for _ in range(n_in)], "max_tokens": n_out,
                    "temperature": 0, "ignore_eos": True, "stream": True, "return_token_ids": True,
                    "stream_options": {"include_usage": True}}
            if writer is None:
                try:
                    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 30)
                except (OSError, asyncio.TimeoutError) as e:
                    stats.error("connect", f"{type(e).__name__}: {e}")
                    await asyncio.sleep(0.5)  # the server may be gone: do not spin
                    continue
            try:
                reusable = await asyncio.wait_for(one_request(reader, writer, body, n_out, stats), a.request_timeout)
            except asyncio.TimeoutError:
                stats.error("timeout", f"no complete response in {a.request_timeout} s")
                reusable = False
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as e:
                stats.error("connection", f"{type(e).__name__}: {e}")  # reset or closed mid-response
                reusable = False
            except (ProtocolError, ValueError, KeyError, TypeError) as e:
                stats.error("protocol", f"{type(e).__name__}: {e}")
                reusable = False
            if not reusable and writer is not None:
                writer.close()
                reader = writer = None
    except asyncio.CancelledError:
        stats.cut_at_end += 1
    finally:
        if writer is not None:
            writer.close()


async def sampler(a, port, pid, t0, samples, stop):
    while True:
        entry = {"t_s": round(time.monotonic() - t0, 1)}
        mem = rss_kib(pid) if pid else None
        if mem:
            entry["rss_mib"], entry["hwm_mib"] = round(mem[0] / 1024, 1), round(mem[1] / 1024, 1)
        try:
            status, body = await http_get(port, "/metrics")
            if status == 200:
                entry.update(gauges(body.decode()))
        except (OSError, asyncio.TimeoutError, ProtocolError, asyncio.IncompleteReadError):
            entry["metrics"] = "unreachable"
        samples.append(entry)
        try:
            await asyncio.wait_for(stop.wait(), a.sample_interval)
            return
        except asyncio.TimeoutError:
            pass


async def wait_healthy(port, proc, timeout=300):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"dsinfer serve exited with {proc.returncode} before it was healthy")
        try:
            if (await http_get(port, "/health", 2))[0] == 200:
                return
        except (OSError, asyncio.TimeoutError, ProtocolError, asyncio.IncompleteReadError):
            pass
        await asyncio.sleep(0.2)
    raise SystemExit(f"no healthy server on 127.0.0.1:{port} within {timeout} s")


async def soak(a, port, pid, proc):
    await wait_healthy(port, proc)
    stats, samples, stop = Stats(), [], asyncio.Event()
    t0 = time.monotonic()
    deadline = t0 + a.duration
    sampling = asyncio.create_task(sampler(a, port, pid, t0, samples, stop))
    clients = [asyncio.create_task(client(i, a, port, deadline, stats)) for i in range(a.streams)]
    print(f"{a.streams} streams for {a.duration:g} s against 127.0.0.1:{port}", flush=True)
    progress_at = t0
    while time.monotonic() < deadline:
        await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        if time.monotonic() - progress_at >= 30:
            progress_at = time.monotonic()
            print(f"  {progress_at - t0:6.0f} s: {stats.ok} ok, {sum(stats.errors.values())} errors, "
                  f"rss {samples[-1].get('rss_mib', '?')} MiB", flush=True)
    _, still = await asyncio.wait(clients, timeout=a.grace)
    for c in still:
        c.cancel()
    await asyncio.gather(*still, return_exceptions=True)
    elapsed = time.monotonic() - t0
    stop.set()
    await sampling
    return stats, samples, elapsed


# ---------------------------------------------------------------- the report

def percentile(values, q):
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(q * len(s) + 0.5) - 1))]  # nearest rank


def report(a, stats, samples, elapsed, exit_code):
    ms = lambda v: None if v is None else round(1e3 * v, 2)
    dist = lambda v: {"count": len(v), "p50_ms": ms(percentile(v, 0.50)), "p99_ms": ms(percentile(v, 0.99)),
                      "max_ms": ms(max(v) if v else None)}
    rss = [s["rss_mib"] for s in samples if "rss_mib" in s]
    # Growth after warm-up (the first tenth), as a leak indicator.
    warm = [s["rss_mib"] for s in samples if "rss_mib" in s and s["t_s"] >= a.duration / 10]
    result = {
        "streams": a.streams, "duration_s": a.duration, "elapsed_s": round(elapsed, 1),
        "requests_ok": stats.ok, "errors": stats.errors, "error_examples": stats.error_examples,
        "cut_at_end": stats.cut_at_end, "output_tokens": stats.tokens,
        "output_tokens_per_s": round(stats.tokens / elapsed, 1) if elapsed else None,
        "ttft": dist(stats.ttft), "itl": dist(stats.itl), "e2e": dist(stats.e2e),
        "rss_mib": {"first": rss[0] if rss else None, "peak": max(rss) if rss else None,
                    "last": rss[-1] if rss else None,
                    "growth_after_warmup": round(warm[-1] - warm[0], 1) if len(warm) > 1 else None},
        "server_exit_code": exit_code, "samples": samples,
    }
    n_err = sum(stats.errors.values())
    print()
    print(f"{'Streams x duration:':<32}{a.streams} x {a.duration:g} s ({elapsed:.1f} s with the drain)")
    print(f"{'Requests ok:':<32}{stats.ok}")
    print(f"{'Errors:':<32}{n_err}" + "".join(f"\n  {k:<30}{v}  e.g. {stats.error_examples[k]}"
                                             for k, v in sorted(stats.errors.items())))
    print(f"{'Cut off at the end:':<32}{stats.cut_at_end}")
    print(f"{'Output tokens (per s):':<32}{stats.tokens} ({result['output_tokens_per_s']})")
    for name in ("ttft", "itl", "e2e"):
        d = result[name]
        print(f"{name.upper() + ' p50 / p99 / max (ms):':<32}{d['p50_ms']} / {d['p99_ms']} / {d['max_ms']}  (n {d['count']})")
    r = result["rss_mib"]
    print(f"{'Server RSS first/peak/last MiB:':<32}{r['first']} / {r['peak']} / {r['last']}"
          f"  (growth after warm-up {r['growth_after_warmup']})")
    if exit_code is not None:
        print(f"{'Server exit code:':<32}{exit_code}")
    print("\n  t (s)   RSS MiB   running  waiting  KV blocks  connections")
    step = max(1, len(samples) // 20)  # at most ~20 rows on screen; all of them in --result-file
    for s in samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else []):
        print(f"  {s['t_s']:6.1f}  {s.get('rss_mib', '-'):>8}  {s.get('dsinfer_num_requests_running', '-'):>8}"
              f"  {s.get('dsinfer_num_requests_waiting', '-'):>7}  {s.get('dsinfer_kv_cache_blocks_used', '-'):>9}"
              f"  {s.get('dsinfer_http_connections_open', '-'):>11}")
    if a.result_file:
        with open(a.result_file, "w") as f:
            json.dump(result, f, indent=2)
        print(f"\nwrote {a.result_file}")
    return n_err == 0 and stats.ok > 0 and exit_code in (None, 0)


def main():
    a = parse_args()
    # One socket per stream, plus the sampler's.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = a.streams + 64
    if soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            raise SystemExit(f"{a.streams} streams need {want} file descriptors; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    server = None
    if a.base_url:
        port, pid = a.port, a.server_pid
    else:
        server = StartedServer(a.dsinfer, a.serve_arg)
        port, pid = server.port, server.pid
    exit_code = None
    try:
        stats, samples, elapsed = asyncio.run(soak(a, port, pid, server.proc if server else None))
    finally:
        if server:
            exit_code = server.stop()
    sys.exit(0 if report(a, stats, samples, elapsed, exit_code) else 1)


if __name__ == "__main__":
    main()
