"""A 2-rank server whose rank 1 stops answering mid-request (SIGSTOP): rank 0's collective
times out (--collective-timeout 2), the request in flight gets HTTP 503 naming the failed
collective, and the job exits non-zero within 30 s."""
import json
import os
import signal
import sys
import threading
import time

os.environ["DSINFER_SERVE_RANKS"] = "2"
os.environ["DSINFER_SERVE_LAYOUT"] = "--enable-expert-parallel --collective-timeout 2"
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "server"))
import serverlib  # noqa: E402
from test_rank_failure import rank_pids  # noqa: E402

DEADLINE_S = 30


def main():
    model_dir = os.path.join(serverlib.DATA, "tiny-v2-lite")
    srv = serverlib.Server("--model", model_dir)
    result = {}

    def request():
        try:
            result["status"], result["body"] = srv.post("/v1/completions", {
                "model": model_dir, "prompt": [1, 2, 3], "max_tokens": 100000, "ignore_eos": True,
                "temperature": 0})
        except Exception as e:  # noqa: BLE001 (reported below)
            result["error"] = repr(e)

    t = threading.Thread(target=request)
    t.start()
    time.sleep(1.0)
    assert t.is_alive(), f"the request ended before a rank could fail: {result}"
    pids = rank_pids(srv.proc.pid)
    assert len(pids) == 2, pids
    os.kill(pids[1], signal.SIGSTOP)
    start = time.monotonic()
    try:
        t.join(DEADLINE_S)
        assert not t.is_alive(), "no response within 30 s of the rank failing"
        assert result.get("status") == 503, f"expected 503, got {result}"
        assert "did not complete within 2.0 s" in json.dumps(result["body"]), result
        try:
            code = srv.proc.wait(DEADLINE_S - (time.monotonic() - start))
        except Exception:  # noqa: BLE001
            raise AssertionError(f"the job still runs {DEADLINE_S} s after rank 1 failed:\n{srv.log_text()[-3000:]}")
        assert code != 0, "exit status 0 after a rank failed"
        print(f"rank 1 stopped: 503 after {time.monotonic() - start:.1f} s, job exit status {code}")
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
