"""A 2-rank server with data-parallel attention (`-dp 2`):
- concurrent streaming completions, which rank 0 spreads over both DP ranks (its log names
  each request's rank, /metrics counts them), give exactly the greedy tokens each prompt gives
  alone on a one-process server, with each token's logprob within 1e-5 of it;
- with each rank's KV pool too small for its share of the load, requests are preempted and
  recomputed on the rank they were placed on (each is placed once), and every one still gets
  exactly its tokens alone.
Arguments: the cases to run (spread, preemption; default both)."""
import os
import random
import re
import sys
import threading

os.environ["DSINFER_SERVE_RANKS"] = "2"
os.environ["DSINFER_SERVE_LAYOUT"] = "-dp 2"
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "server"))
import serverlib  # noqa: E402

MODEL = os.path.join(serverlib.DATA, "tiny-v2-lite")
N_STREAMS = 6
MAX_TOKENS = 24
# tiny-v2-lite: 960 bytes of KV per token, 61440 per 64-token block. 6 blocks per rank; 8
# requests of 100-107 + 60 tokens (3 blocks each) need 12 on each rank.
KV_BYTES = 6 * 61440
PREEMPT_JOBS = [([random.Random(11 + i).randrange(2, 1024) for _ in range(100 + i)], 60) for i in range(8)]


# Logprobs are log-softmaxes of the logits rows the DP ranks send rank 0 (test_data_parallel.py).
LOGPROB_TOLERANCE = 1e-5


def body(prompt, n_out, stream):
    return {"model": MODEL, "prompt": prompt, "max_tokens": n_out, "temperature": 0, "ignore_eos": True,
            "return_token_ids": True, "logprobs": 1, "stream": stream}


def streamed(srv, prompt, n_out):
    """(token ids, their logprobs) of a streamed completion."""
    events = srv.stream("/v1/completions", body(prompt, n_out, True))
    choices = [c for e in events[:-1] for c in e["choices"]]
    return ([t for c in choices for t in c.get("token_ids", [])],
            [x for c in choices if c.get("logprobs") for x in c["logprobs"]["token_logprobs"]])


def alone(base, prompt, n_out):
    status, out = base.post("/v1/completions", body(prompt, n_out, False))
    assert status == 200, out
    return out["choices"][0]["token_ids"], out["choices"][0]["logprobs"]["token_logprobs"]


def same(got, want):
    """Equal tokens, logprobs within the tolerance; returns the largest logprob difference."""
    assert got[0] == want[0], (got[0], want[0])
    assert len(got[1]) == len(want[1]) == len(want[0]), (len(got[1]), len(want[1]))
    diff = max(abs(a - b) for a, b in zip(got[1], want[1]))
    assert diff < LOGPROB_TOLERANCE, diff
    return diff


def concurrently(srv, jobs):
    results = [None] * len(jobs)
    barrier = threading.Barrier(len(jobs))

    def client(i):
        barrier.wait()
        results[i] = streamed(srv, *jobs[i])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def placements(srv):
    return [int(r) for r in re.findall(r"placed on DP rank (\d+)", srv.log_text())]


def check_spread(base):
    jobs = [([1 + i, 7 + 2 * i, 3, 11 + i][: 2 + i % 3] + [5] * i, MAX_TOKENS) for i in range(N_STREAMS)]
    want = [alone(base, *j) for j in jobs]
    srv = serverlib.Server("--model", MODEL)
    try:
        got = concurrently(srv, jobs)
        worst = max(same(got[i], want[i]) for i in range(N_STREAMS))
        placed = placements(srv)
        assert len(placed) == N_STREAMS, placed
        assert set(placed) == {0, 1}, f"the requests were not spread over both DP ranks: {placed}"
        metrics = srv.metrics()
        counts = {d: metrics.get(f'dsinfer_dp_requests_placed_total{{dp_rank="{d}"}}') for d in (0, 1)}
        assert counts[0] and counts[1] and counts[0] + counts[1] == N_STREAMS, counts
        print(f"{N_STREAMS} concurrent streams on DP2 placed on ranks {placed} (metrics {counts}): "
              f"{MAX_TOKENS} greedy tokens each equal to the prompt alone, logprobs within {worst:.1e}")
    finally:
        srv.stop_cleanly()


def check_preemption(base):
    want = [alone(base, *j) for j in PREEMPT_JOBS]
    srv = serverlib.Server("--model", MODEL, "--kv-cache-memory", str(KV_BYTES), "--max-num-seqs", "16")
    try:
        got = concurrently(srv, PREEMPT_JOBS)
        m = srv.metrics()
        assert m["dsinfer_num_preemptions_total"] > 0, "each rank's cache was meant to be too small"
        assert m["dsinfer_kv_cache_num_blocks"] == 12, m["dsinfer_kv_cache_num_blocks"]  # 6 per rank
        for a, b in zip(got, want):
            assert len(a[0]) == 60
            same(a, b)
        placed = placements(srv)
        assert len(placed) == len(PREEMPT_JOBS) and set(placed) == {0, 1}, placed
        print(f"{len(PREEMPT_JOBS)} requests on DP2 with 6 KV blocks per rank: "
              f"{int(m['dsinfer_num_preemptions_total'])} preemptions, each request placed once ({placed}), "
              f"60 tokens each equal to the request alone")
    finally:
        srv.stop_cleanly()


def main():
    serverlib.SERVE_RANKS = 1  # the reference: one process, one sequence at a time, no prefix cache
    base = serverlib.baseline_server("--model", MODEL)
    serverlib.SERVE_RANKS = 2
    try:
        for case in sys.argv[1:] or ["spread", "preemption"]:
            {"spread": check_spread, "preemption": check_preemption}[case](base)
    finally:
        base.stop_cleanly()
    print("ok")


if __name__ == "__main__":
    main()
