"""Data-parallel attention (`-dp N`, experts split over all N ranks, tokens sent to their
experts by all-to-all) against one process, as real ranks under mpirun.

For each fixture and layout:
- `dsinfer logits` over a 40-token prompt: the prompt runs on DP rank 0 while every other rank
  has an empty step (it still joins every MoE exchange, serving its experts); within
  LOGIT_TOLERANCE of the single-process logits.
- `dsinfer generate` with several prompts at once: rank 0 places them over the DP ranks (the
  log says where; with fewer prompts than ranks some ranks stay empty every step); each
  prompt's 16 greedy tokens equal its single-process run alone.
Plus the startup checks of the DP flags. Arguments: the fixtures and layouts to run
(default: tiny-v2-lite DP2, the quick case)."""
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "engine"))
import safetensors_io  # noqa: E402

BIN = os.environ["DSINFER_BIN"]
DATA = os.environ["DSINFER_DATA"]
MPIRUN = ["mpirun", "--oversubscribe", "--allow-run-as-root", "--mca", "btl_vader_single_copy_mechanism", "none"]
# The same float32 operations as one process: attention and the shared experts are whole on
# every rank, and each token's routed experts are summed by its own rank in increasing expert
# id (moe_combine), as one process does. Only the GEMMs see other batch shapes; 1e-5 is the
# bound every layout is held to (test_layouts.py).
LOGIT_TOLERANCE = 1e-5
MAX_TOKENS = 16
LAYOUTS = {"DP2": 2, "DP3": 3, "DP4": 4}


def run(args, np=1, check=True, log_level="warn"):
    cmd = ([*MPIRUN, "-np", str(np)] if np > 1 else []) + [BIN, "--log-level", log_level, *args, "--threads", "1"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr}")
    return r


def logits(model, tokens, out, np=1, flags=()):
    run(["logits", "--model", model, "--tokens", tokens, "--out", out, *flags], np)
    return safetensors_io.read(out)["logits"]


def generate(model, prompts, np=1, flags=()):
    """Token ids per prompt, and the DP rank each prompt was placed on (from rank 0's log)."""
    args = ["generate", "--model", model, "--max-tokens", str(MAX_TOKENS), "--json", *flags]
    for p in prompts:
        args += ["--tokens", p]
    r = run(args, np, log_level="info")
    lines = [line for line in r.stdout.splitlines() if line.strip()]
    assert len(lines) == len(prompts), f"expected {len(prompts)} output lines from rank 0 alone, got: {r.stdout!r}"
    placed = [int(m) for m in re.findall(r"placed on DP rank (\d+)", r.stderr + r.stdout)]
    return [json.loads(line)["token_ids"] for line in lines], placed


def prompts_of(ref, n):
    """n different prompts of different lengths from the fixture's reference prompts."""
    base = [list(ref["prompt1.input_ids"][1]), list(ref["prompt2.input_ids"][1])]
    out = []
    for i in range(n):
        p = base[1][: 5 + 3 * i] if i >= 2 else base[i]
        out.append(",".join(map(str, p)))
    return out


def check(name, layout, tmp):
    np = LAYOUTS[layout]
    model = os.path.join(DATA, name)
    ref = safetensors_io.read(os.path.join(model, "reference.safetensors"))
    long_prompt = ",".join(map(str, ref["prompt2.input_ids"][1]))
    shape, want = logits(model, long_prompt, os.path.join(tmp, f"{name}-1.safetensors"))
    got_shape, got = logits(model, long_prompt, os.path.join(tmp, f"{name}-{layout}.safetensors"), np, ["-dp", str(np)])
    assert got_shape == shape, (name, layout, got_shape, shape)
    diff = max(abs(a - b) for a, b in zip(got, want))
    assert diff < LOGIT_TOLERANCE, (name, layout, diff)

    # One prompt fewer than ranks (DP4: one rank idle throughout), but at least 3.
    prompts = prompts_of(ref, max(3, np - 1))
    alone = [generate(model, [p])[0][0] for p in prompts]
    ids, placed = generate(model, prompts, np, ["--data-parallel-size", str(np)])
    assert len(placed) == len(prompts), (name, layout, "placement log lines", placed)
    assert len(set(placed)) == min(len(prompts), np), (name, layout, "requests not spread over the ranks", placed)
    for i, (a, b) in enumerate(zip(ids, alone)):
        assert a == b, (name, layout, f"prompt {i} on DP rank {placed[i]}", a, b)
    print(f"{name} {layout}: logits max |diff| {diff:.2e} (ranks 1.. empty); {len(prompts)} prompts placed on "
          f"DP ranks {placed}, {MAX_TOKENS} greedy tokens each equal to the prompt alone")


def check_startup_errors():
    model = os.path.join(DATA, "tiny-v2-lite")
    cases = [
        (["-dp", "2", "-tp", "2"], 4, "tensor parallelism inside a data-parallel group is not supported yet"),
        (["-dp", "2"], 4, "--data-parallel-size 2 needs exactly 2 ranks"),
        (["-dp", "2", "--expert-parallel-size", "4"], 2, "--expert-parallel-size 4 does not match"),
        (["-dp", "2"], 1, "not a multiple of --tensor-parallel-size 1 x --data-parallel-size 2"),
    ]
    for flags, np, text in cases:
        r = run(["logits", "--model", model, "--tokens", "1,2", "--out", "/dev/null", *flags], np, check=False)
        assert r.returncode != 0, (flags, np, "succeeded")
        assert r.stderr.count(text) == 1, (flags, np, f"expected '{text}' once in stderr, got: {r.stderr}")
    print("DP startup checks: each error printed once, every rank exits non-zero")


def main():
    cases = sys.argv[1:] or ["tiny-v2-lite:DP2"]
    with tempfile.TemporaryDirectory() as tmp:
        if "--startup" in cases:
            check_startup_errors()
        for case in cases:
            if case != "--startup":
                name, layout = case.split(":")
                check(name, layout, tmp)
    print("ok")


if __name__ == "__main__":
    main()
