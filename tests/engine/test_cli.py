"""`dsinfer logits` and `dsinfer generate` exactly as the held-out checks run them: every fixture,
every prompt, max |logit - reference| < LOGIT_TOLERANCE and the 24 greedy tokens equal (tie-aware:
tests/common/parity.py); the errors a user can cause (bad flags, missing or broken models) give a
message and a non-zero exit; and tensor dumps with compare-dumps."""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import safetensors_io  # noqa: E402
from parity import compare_greedy_tie_aware, rows  # noqa: E402

BIN = os.environ["DSINFER_BIN"]
DATA = os.environ["DSINFER_DATA"]
FIXTURES = ["tiny-v2-lite", "tiny-v3-fp8", "tiny-v2-group", "tiny-v3-odd"]
# The CPU float32 path against the float64 reference: measured max |diff| 2.9e-6 (float32
# accumulation over hidden sizes 192..256 and three layers), so 1e-5 leaves ~3x headroom.
LOGIT_TOLERANCE = 1e-5
# Two logits each off by at most LOGIT_TOLERANCE can swap order only where the reference's gap
# between them is below twice that.
TIE_BOUND = 2 * LOGIT_TOLERANCE


def dsinfer(*args, check=True):
    r = subprocess.run([BIN, "--log-level", "warn", *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"dsinfer {' '.join(args)} failed ({r.returncode}): {r.stderr}")
    return r


def check_fixture(model, tmp):
    ref = safetensors_io.read(os.path.join(DATA, model, "reference.safetensors"))
    for k in range(4):
        ids = ref[f"prompt{k}.input_ids"][1]
        tokens = ",".join(map(str, ids))
        out = os.path.join(tmp, f"{model}-{k}.safetensors")
        dsinfer("logits", "--model", os.path.join(DATA, model), "--tokens", tokens, "--out", out)
        shape, got = safetensors_io.read(out)["logits"]
        ref_shape, want = ref[f"prompt{k}.logits"]
        assert shape == ref_shape, (model, k, shape, ref_shape)
        diff = max(abs(a - b) for a, b in zip(got, want))
        assert diff < LOGIT_TOLERANCE, (model, k, diff)
        r = dsinfer("generate", "--model", os.path.join(DATA, model), "--tokens", tokens, "--max-tokens", "24",
                    "--temperature", "0", "--json")
        generated = json.loads(r.stdout)["token_ids"]
        want = ref[f"prompt{k}.greedy_ids"][1]
        # The rows the reference tokens were chosen from: the fixture has logits over the prompt
        # only, so the continuation's come from `dsinfer logits` over prompt + reference tokens
        # (the computation checked against the reference just above).
        forced = os.path.join(tmp, f"{model}-{k}-forced.safetensors")
        dsinfer("logits", "--model", os.path.join(DATA, model), "--tokens", ",".join(map(str, ids + want[:-1])),
                "--out", forced)
        forced_shape, forced_logits = safetensors_io.read(forced)["logits"]
        path = rows(forced_logits, forced_shape[1])[len(ids) - 1:]
        cmp = compare_greedy_tie_aware(path, want, generated, TIE_BOUND)
        assert cmp.ok, (model, k, cmp.message, generated)
        print(f"{model} prompt{k}: {len(ids)} tokens, max |diff| {diff:.2e}, greedy ok")


def expect_error(args, text):
    r = dsinfer(*args, check=False)
    assert r.returncode != 0, f"{args} succeeded"
    assert text in r.stderr, f"{args}: expected '{text}' in stderr, got: {r.stderr}"


def check_errors(tmp):
    lite = os.path.join(DATA, "tiny-v2-lite")
    expect_error(["generate", "--model", "/nonexistent", "--tokens", "0"], "no such folder")
    expect_error(["generate", "--model", lite, "--tokens", "0,x,2"], "'x' is not a token id")
    expect_error(["generate", "--model", lite, "--tokens", "0,5000"], "outside the vocabulary")
    expect_error(["generate", "--model", lite, "--tokens", "0", "--max-tokens", "0"], "max_tokens")
    expect_error(["generate", "--model", lite, "--tokens", "0", "--load-format", "pickle"], "--load-format")
    expect_error(["logits", "--model", lite, "--tokens", "0"], "--out is required")
    broken = os.path.join(tmp, "broken")
    os.mkdir(broken)
    for name in os.listdir(lite):
        src = os.path.join(lite, name)
        data = open(src, "rb").read()
        if name == "model-00002-of-00002.safetensors":
            data = data[: len(data) // 2]  # truncated shard
        open(os.path.join(broken, name), "wb").write(data)
    expect_error(["generate", "--model", broken, "--tokens", "0"], "model-00002-of-00002.safetensors")
    config = json.load(open(os.path.join(lite, "config.json")))
    config["topk_method"] = "best_guess"
    json.dump(config, open(os.path.join(broken, "config.json"), "w"))
    expect_error(["generate", "--model", broken, "--tokens", "0"], 'topk_method = "best_guess"')
    expect_error(["generate", "--model", lite, "--tokens", "0", "--device", "cpu", "--dtype", "bfloat16"],
                 "--dtype bfloat16 is not supported by the CPU backend")
    expect_error(["logits", "--model", lite, "--tokens", "0", "--out", "x", "--dump-tensors", "q"],
                 "--dump-tensors needs --dump-dir")
    print("error cases ok")


def check_dumps(tmp):
    """A dump of a run compares equal to a dump of the same run on another thread count, and
    compare-dumps fails (exit 1) when a tensor differs."""
    lite = os.path.join(DATA, "tiny-v2-lite")
    dirs = []
    for threads, tokens in [("1", "0,17,5"), ("2", "0,17,5"), ("2", "0,17,6")]:
        d = os.path.join(tmp, f"dump-{len(dirs)}")
        dsinfer("logits", "--model", lite, "--tokens", tokens, "--out", os.path.join(tmp, "l.safetensors"),
                "--threads", threads, "--device", "cpu", "--dump-tensors", "*", "--dump-layers", "1",
                "--dump-dir", d)
        dirs.append(d)
    names = safetensors_io.read(os.path.join(dirs[0], "step0.safetensors"))
    assert "layer.1.q_rope" in names and "layer.0.q_rope" not in names and "logits" in names, sorted(names)
    same = dsinfer("compare-dumps", dirs[0], dirs[1], "--max-rel-error", "1e-5")
    assert "layer.1.moe_out" in same.stdout, same.stdout
    differ = dsinfer("compare-dumps", dirs[0], dirs[2], "--max-rel-error", "1e-5", check=False)
    assert differ.returncode == 1 and "differ beyond the tolerance" in differ.stdout, differ.stdout
    print("dumps ok")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        for model in FIXTURES:
            check_fixture(model, tmp)
        check_errors(tmp)
        check_dumps(tmp)


main()
