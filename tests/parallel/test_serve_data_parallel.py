"""A 2-rank server with data-parallel attention (`-dp 2`): concurrent streaming completions,
which rank 0 spreads over both DP ranks (its log names each request's rank, /metrics counts
them), give exactly the greedy text each prompt gives alone on a one-process server."""
import os
import re
import sys
import threading

os.environ["DSINFER_SERVE_RANKS"] = "2"
os.environ["DSINFER_SERVE_LAYOUT"] = "-dp 2"
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "server"))
import serverlib  # noqa: E402

N_STREAMS = 6
MAX_TOKENS = 24


def completion(srv, model, prompt):
    events = srv.stream("/v1/completions", {"model": model, "prompt": prompt, "max_tokens": MAX_TOKENS,
                                            "temperature": 0, "ignore_eos": True, "stream": True})
    return "".join(e["choices"][0]["text"] for e in events if e != "[DONE]" and e["choices"])


def main():
    model = os.path.join(serverlib.DATA, "tiny-v2-lite")
    prompts = [[1 + i, 7 + 2 * i, 3, 11 + i][: 2 + i % 3] + [5] * i for i in range(N_STREAMS)]
    serverlib.SERVE_RANKS = 1  # the reference: one process, one sequence at a time
    base = serverlib.baseline_server("--model", model)
    try:
        alone = [completion(base, model, p) for p in prompts]
    finally:
        base.stop_cleanly()
    serverlib.SERVE_RANKS = 2
    srv = serverlib.Server("--model", model)
    try:
        results = [None] * N_STREAMS
        barrier = threading.Barrier(N_STREAMS)

        def client(i):
            barrier.wait()
            results[i] = completion(srv, model, prompts[i])

        threads = [threading.Thread(target=client, args=(i,)) for i in range(N_STREAMS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        for i in range(N_STREAMS):
            assert results[i] == alone[i], (i, results[i], alone[i])
        placed = [int(r) for r in re.findall(r"placed on DP rank (\d+)", srv.log_text())]
        assert len(placed) == N_STREAMS, placed
        assert set(placed) == {0, 1}, f"the requests were not spread over both DP ranks: {placed}"
        metrics = srv.metrics()
        counts = {d: metrics.get(f'dsinfer_dp_requests_placed_total{{dp_rank="{d}"}}') for d in (0, 1)}
        assert counts[0] and counts[1] and counts[0] + counts[1] == N_STREAMS, counts
        print(f"{N_STREAMS} concurrent streams on DP2 placed on ranks {placed} (metrics {counts}): "
              f"{MAX_TOKENS} greedy tokens each equal to the prompt alone")
    finally:
        srv.stop_cleanly()
    print("ok")


if __name__ == "__main__":
    main()
