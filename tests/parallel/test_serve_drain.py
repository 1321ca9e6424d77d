"""A 2-rank server drains across ranks: a stream in flight when the drain starts completes in
full, the job exits 0, and new work is refused meanwhile. Two ways to start it: SIGTERM to
rank 0's process, and SIGUSR1 to mpirun (which forwards it to every rank; SIGTERM to mpirun
would end the ranks at once). Timings are limits (the drain ends within 60 s), not goals."""
import os
import signal
import sys
import threading
import time

os.environ["DSINFER_SERVE_RANKS"] = "2"
os.environ["DSINFER_SERVE_LAYOUT"] = "--enable-expert-parallel"
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "server"))
import serverlib  # noqa: E402

MODEL_DIR = os.path.join(serverlib.DATA, "tiny-v2-lite")
N_TOKENS = 1500


def check(how):
    srv = serverlib.Server("--model", MODEL_DIR, "--shutdown-timeout", "60")
    try:
        result = {}

        def stream():
            result["events"] = srv.stream("/v1/completions", {
                "model": MODEL_DIR, "prompt": [1, 2, 3], "max_tokens": N_TOKENS, "ignore_eos": True,
                "temperature": 0, "stream": True, "return_token_ids": True})

        t = threading.Thread(target=stream)
        t.start()
        deadline = time.time() + 30
        while srv.metrics()["dsinfer_num_requests_running"] != 1 and time.time() < deadline:
            time.sleep(0.01)
        assert srv.metrics()["dsinfer_num_requests_running"] == 1, "the stream never showed as running"
        if how == "SIGTERM to rank 0":
            os.kill(srv.rank0_pid(), signal.SIGTERM)
        else:
            os.kill(srv.proc.pid, signal.SIGUSR1)
        start = time.monotonic()
        t.join(60)
        assert not t.is_alive(), f"{how}: the stream did not finish within 60 s"
        code = srv.proc.wait(60)
        events = result["events"]
        ids = [i for e in events if isinstance(e, dict) for c in e.get("choices", []) for i in c.get("token_ids", [])]
        assert len(ids) == N_TOKENS, f"{how}: {len(ids)} of {N_TOKENS} tokens"
        assert events[-1] == "[DONE]", events[-2:]
        assert code == 0, f"{how}: exit status {code}:\n{srv.log_text()[-3000:]}"
        log = srv.log_text()
        assert "draining (no new requests; 1 running" in log, log[-3000:]
        print(f"{how}: the stream finished ({len(ids)} tokens), job exit 0 after {time.monotonic() - start:.1f} s")
    finally:
        srv.kill()


def main():
    check("SIGTERM to rank 0")
    check("SIGUSR1 to mpirun")
    print("ok")


if __name__ == "__main__":
    main()
