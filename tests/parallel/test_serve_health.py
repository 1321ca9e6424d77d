"""A 2-rank server under mpirun (rank 0 serves, both run every step):

1. /metrics: after a request, the step time spent in collectives shows as
   dsinfer_engine_step_seconds_total{phase="communication"} > 0, moved out of forward (the
   phases still add up to no more than the time the engine ran).
2. Rank 1 stops answering (SIGSTOP) while a streamed and a whole request are in flight:
   rank 0's collective times out (--collective-timeout 2), the stream ends with an error
   event, the whole request gets 503; from then until the job exits, GET /health answers 503
   with a JSON body naming the collective, its group and the rank that waited (polled here:
   seen before the process is gone); new requests get 503; the job exits non-zero, within
   30 s of the rank failing (a limit, not a speed goal).
3. With --kill instead: rank 1 is killed outright (SIGKILL). mpirun notices, sends the other
   ranks SIGTERM and SIGKILL about a second later; rank 0 sees that the SIGTERM comes from its
   launcher and cancels every request at once: the stream ends with a 503 error event, the
   whole request gets 503, /health answers 503 naming the launcher, and the job exits non-zero
   within 30 s.

Usage: test_serve_health.py [--kill] (DSINFER_BIN, DSINFER_DATA from CTest)."""
import http.client
import json
import os
import signal
import sys
import threading
import time

os.environ["DSINFER_SERVE_RANKS"] = "2"
os.environ["DSINFER_SERVE_LAYOUT"] = "--enable-expert-parallel --collective-timeout 2 --failure-exit-delay 4"
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "server"))
import serverlib  # noqa: E402
from test_rank_failure import rank_pids  # noqa: E402

KILL = "--kill" in sys.argv[1:]

DEADLINE_S = 30
MODEL_DIR = os.path.join(serverlib.DATA, "tiny-v2-lite")


def check_communication_metrics(srv):
    before = srv.metrics()
    status, body = srv.post("/v1/completions", {"model": MODEL_DIR, "prompt": [1, 2, 3], "max_tokens": 8,
                                                "temperature": 0, "ignore_eos": True})
    assert status == 200, (status, body)
    m = srv.metrics()
    phase = 'dsinfer_engine_step_seconds_total{{phase="{}"}}'.format
    comm = m[phase("communication")] - before[phase("communication")]
    forward = m[phase("forward")] - before[phase("forward")]
    assert comm > 0, f"no communication time after a 2-rank request: {comm}"
    assert forward > 0, f"forward time {forward}"
    steps = m["dsinfer_engine_steps_total"] - before["dsinfer_engine_steps_total"]
    assert steps >= 8, steps
    # Phases are parts of the steps: together no more than the server has been up.
    total = sum(m[phase(p)] for p in ("schedule", "forward", "communication", "sampling"))
    assert total < time.monotonic() - STARTED, (total, m)
    print(f"communication {comm * 1e3:.2f} ms, forward {forward * 1e3:.2f} ms over {steps:.0f} steps")


def health(srv):
    """(status, parsed body or raw bytes) of GET /health; None when nothing answers."""
    try:
        status, _, data = srv.request("GET", "/health", timeout=2)
    except (OSError, http.client.HTTPException):
        return None
    try:
        return status, json.loads(data) if data else data
    except ValueError:
        return status, data


def check_stream_ended_503(events):
    """A stream cut short by the failure: an error event with code 503, then [DONE]."""
    assert isinstance(events, list), f"the stream: {events}"
    errors = [e for e in events if isinstance(e, dict) and "error" in e]
    assert errors, f"no error event in the stream: {events[-3:]}"
    assert errors[-1]["error"]["code"] == 503, errors[-1]
    assert events[-1] == "[DONE]", events[-3:]


def check_rank_failure(srv):
    results = {}

    def whole():
        try:
            results["whole"] = srv.post("/v1/completions", {
                "model": MODEL_DIR, "prompt": [1, 2, 3], "max_tokens": 100000, "ignore_eos": True, "temperature": 0})
        except Exception as e:  # noqa: BLE001 (reported below)
            results["whole"] = ("error", repr(e))

    def streamed():
        try:
            results["stream"] = srv.stream("/v1/completions", {
                "model": MODEL_DIR, "prompt": [4, 5, 6], "max_tokens": 100000, "ignore_eos": True, "temperature": 0,
                "stream": True})
        except Exception as e:  # noqa: BLE001 (reported below)
            results["stream"] = ("error", repr(e))

    threads = [threading.Thread(target=whole), threading.Thread(target=streamed)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    assert all(t.is_alive() for t in threads), f"a request ended before a rank could fail: {results}"
    assert health(srv) == (200, b""), health(srv)
    pids = rank_pids(srv.proc.pid)
    assert len(pids) == 2, pids
    os.kill(pids[1], signal.SIGKILL if KILL else signal.SIGSTOP)
    start = time.monotonic()

    # Poll /health until the job is gone: it must say 503, naming the failure, while rank 0 lives.
    unhealthy = None
    refused_after_failure = None
    while srv.proc.poll() is None and time.monotonic() - start < DEADLINE_S:
        h = health(srv)
        if h and h[0] == 503 and unhealthy is None:
            unhealthy = (time.monotonic() - start, h[1])
            # New work is refused with the reason while the process still runs.
            refused_after_failure = srv.post("/v1/completions", {"model": MODEL_DIR, "prompt": [1], "max_tokens": 2})
        time.sleep(0.1)
    try:
        code = srv.proc.wait(max(0.1, DEADLINE_S - (time.monotonic() - start)))
    except Exception:  # noqa: BLE001
        raise AssertionError(f"the job still runs {DEADLINE_S} s after rank 1 failed:\n{srv.log_text()[-3000:]}")
    exited = time.monotonic() - start
    for t in threads:
        t.join(5)
    assert code != 0, "exit status 0 after a rank failed"
    assert exited < DEADLINE_S, exited

    if KILL:
        check_killed(srv, results, unhealthy, code, exited)
        return
    assert unhealthy is not None, f"/health never answered 503 before the exit:\n{srv.log_text()[-3000:]}"
    seen_at, body = unhealthy
    assert body["status"] == "unhealthy", body
    assert body["failed"]["group"] in ("world", "tp"), body
    assert body["failed"]["rank"] == 0, body
    assert body["failed"]["collective"], body
    assert body["failed"]["timeout_s"] == 2, body
    assert "did not complete within 2.0 s" in body["error"], body
    assert refused_after_failure[0] == 503, refused_after_failure
    assert "a rank of its parallel group failed" in json.dumps(refused_after_failure[1]), refused_after_failure

    status, whole_body = results["whole"]
    assert status == 503, f"the whole request: {results['whole']}"
    assert "did not complete within 2.0 s" in json.dumps(whole_body), whole_body
    check_stream_ended_503(results["stream"])

    log = srv.log_text()
    assert "parallel group failed: rank 0 of group" in log, log[-3000:]
    print(f"rank 1 stopped: /health 503 after {seen_at:.1f} s, job exit status {code} after {exited:.1f} s")


def check_killed(srv, results, unhealthy, code, exited):
    """Rank 1 was killed: rank 0 cancelled everything on its launcher's SIGTERM."""
    log = srv.log_text()
    assert "SIGTERM from the launcher" in log, log[-3000:]
    status, whole_body = results["whole"]
    assert status == 503, f"the whole request: {results['whole']}\n{log[-3000:]}"
    check_stream_ended_503(results["stream"])
    if unhealthy is not None:  # mpirun's SIGKILL may come before the poll sees it
        assert "launcher" in unhealthy[1]["error"], unhealthy
    print(f"rank 1 killed: 503s sent, /health 503 {'seen' if unhealthy else 'not seen'}, job exit status {code} "
          f"after {exited:.1f} s")


def main():
    global STARTED
    STARTED = time.monotonic()
    srv = serverlib.Server("--model", MODEL_DIR)
    try:
        if not KILL:
            check_communication_metrics(srv)
        check_rank_failure(srv)
    finally:
        srv.kill()
        for pid in rank_pids(srv.proc.pid).values():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    print("ok")


if __name__ == "__main__":
    main()
