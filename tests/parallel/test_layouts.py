"""Every parallel layout against one process, as real ranks under mpirun: for each fixture,
`dsinfer logits` over a 40-token prompt within LOGIT_TOLERANCE of the single-process logits,
and `dsinfer generate` (24 greedy tokens through the engine, the KV cache and the rank
protocol) giving exactly the single-process tokens. Layouts: TP2, EP2, EP4, TP2xEP2 (tiny-v3-odd,
with 3 heads and 9 experts, runs TP3 and EP3 instead, and must refuse TP2 with a clear message
printed once)."""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "engine"))
import safetensors_io  # noqa: E402

BIN = os.environ["DSINFER_BIN"]
DATA = os.environ["DSINFER_DATA"]
MPIRUN = ["mpirun", "--oversubscribe", "--allow-run-as-root", "--mca", "btl_vader_single_copy_mechanism", "none"]
# A parallel run sums the same float32 products as one process, in another order: the TP
# all-reduce adds the ranks' partial dot products, the MoE all-reduce the ranks' experts. Each
# reordering moves a sum by a few ulps of its largest partial term; through three layers and the
# lm_head the measured max |diff| is 1.2e-6 on logits of magnitude ~1-5 (float32 ulp at 4 is
# 4.8e-7), so 1e-5 leaves ~8x headroom and still catches any wrong slice (errors of O(0.1)).
LOGIT_TOLERANCE = 1e-5
LAYOUTS = {
    "default": [("TP2", 2, ["-tp", "2"]), ("EP2", 2, ["--enable-expert-parallel"]),
                ("EP4", 4, ["--expert-parallel-size", "4"]),
                ("TP2xEP2", 4, ["--tensor-parallel-size", "2", "--expert-parallel-size", "2"])],
    "tiny-v3-odd": [("TP3", 3, ["-tp", "3"]), ("EP3", 3, ["--enable-expert-parallel"])],
}


def run(args, np=1, check=True):
    cmd = ([*MPIRUN, "-np", str(np)] if np > 1 else []) + [BIN, "--log-level", "warn", *args, "--threads", "1"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr}")
    return r


def logits(model, tokens, out, np=1, flags=()):
    run(["logits", "--model", model, "--tokens", tokens, "--out", out, *flags], np)
    return safetensors_io.read(out)["logits"]


def generate(model, tokens, np=1, flags=()):
    r = run(["generate", "--model", model, "--tokens", tokens, "--max-tokens", "24", "--json", *flags], np)
    lines = [line for line in r.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one output line (rank 0 alone writes), got: {r.stdout!r}"
    return json.loads(lines[0])["token_ids"]


def check_fixture(name, tmp):
    model = os.path.join(DATA, name)
    ref = safetensors_io.read(os.path.join(model, "reference.safetensors"))
    long_prompt = ",".join(map(str, ref["prompt2.input_ids"][1]))   # 40 tokens: prefill
    short_prompt = ",".join(map(str, ref["prompt1.input_ids"][1]))  # 7 tokens, then 24 decode steps
    shape, want = logits(model, long_prompt, os.path.join(tmp, f"{name}-1.safetensors"))
    want_ids = generate(model, short_prompt)
    for layout, np, flags in LAYOUTS.get(name, LAYOUTS["default"]):
        got_shape, got = logits(model, long_prompt, os.path.join(tmp, f"{name}-{layout}.safetensors"), np, flags)
        assert got_shape == shape, (name, layout, got_shape, shape)
        diff = max(abs(a - b) for a, b in zip(got, want))
        assert diff < LOGIT_TOLERANCE, (name, layout, diff)
        ids = generate(model, short_prompt, np, flags)
        assert ids == want_ids, (name, layout, ids, want_ids)
        print(f"{name} {layout} (np {np}): max |logit diff| {diff:.2e}, 24 greedy tokens equal")


def check_startup_errors():
    odd = os.path.join(DATA, "tiny-v3-odd")
    cases = [
        (["-tp", "2"], 2, "num_attention_heads 3 is not divisible by --tensor-parallel-size 2"),
        (["--expert-parallel-size", "2"], 2, "n_routed_experts 9 is not divisible by --expert-parallel-size 2"),
        (["-tp", "2"], 3, "not a multiple of --tensor-parallel-size 2"),
        (["-tp", "2"], 1, "not a multiple of --tensor-parallel-size 2"),
    ]
    # NCCL forced where it cannot run (CPU ranks): refused after loading, by the GPU checks.
    lite = os.path.join(DATA, "tiny-v2-lite")
    cases.append((["-tp", "2", "--device", "cpu", "--device-collectives", "nccl"], 2,
                  "--device-collectives nccl: rank 0 runs on the CPU", lite))
    for flags, np, text, *model in cases:
        r = run(["logits", "--model", (model or [odd])[0], "--tokens", "1,2", "--out", "/dev/null", *flags], np,
                check=False)
        assert r.returncode != 0, (flags, np, "succeeded")
        assert r.stderr.count(text) == 1, (flags, np, f"expected '{text}' once in stderr, got: {r.stderr}")
    print("startup checks: each error printed once, every rank exits non-zero")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        check_startup_errors()
        for name in ["tiny-v2-lite", "tiny-v3-fp8", "tiny-v2-group", "tiny-v3-odd"]:
            check_fixture(name, tmp)
    print("ok")


if __name__ == "__main__":
    main()
