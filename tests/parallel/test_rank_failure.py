"""A rank that dies or hangs mid-generation must end the whole job with a non-zero exit within
30 s, never a silent hang: (1) rank 1 killed with SIGKILL (mpirun notices and ends the job);
(2) rank 1 stopped with SIGSTOP, so it is alive but silent: rank 0's next collective times out
(--collective-timeout 2), it names the collective and ends every rank."""
import os
import signal
import subprocess
import sys
import time

BIN = os.environ["DSINFER_BIN"]
DATA = os.environ["DSINFER_DATA"]
MPIRUN = ["mpirun", "--oversubscribe", "--allow-run-as-root", "--mca", "btl_vader_single_copy_mechanism", "none"]
DEADLINE_S = 30


def rank_pids(parent):
    """{rank: pid} of mpirun's dsinfer children (from their OMPI_COMM_WORLD_RANK)."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            if ppid != parent:
                continue
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
            if b"OMPI_COMM_WORLD_RANK" in env:
                out[int(env[b"OMPI_COMM_WORLD_RANK"])] = int(entry)
        except (OSError, ValueError, IndexError):
            continue
    return out


def check(sig, expect_in_stderr):
    cmd = [*MPIRUN, "-np", "2", BIN, "generate", "--model", os.path.join(DATA, "tiny-v2-lite"), "--tokens", "1,2,3",
           "--max-tokens", "50000", "--threads", "1", "--collective-timeout", "2", "--enable-expert-parallel"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    try:
        pids = {}
        for _ in range(200):  # the ranks start, load and begin generating
            pids = rank_pids(p.pid)
            if len(pids) == 2:
                break
            time.sleep(0.05)
        assert len(pids) == 2, f"did not find both ranks: {pids}"
        time.sleep(0.5)
        if p.poll() is not None:
            raise AssertionError(f"the job ended ({p.returncode}) before a rank could fail: {p.stderr.read()}")
        os.kill(pids[1], sig)
        start = time.monotonic()
        try:
            _, err = p.communicate(timeout=DEADLINE_S)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{signal.Signals(sig).name}: the job still runs {DEADLINE_S} s after rank 1 failed")
        secs = time.monotonic() - start
        assert p.returncode != 0, f"{signal.Signals(sig).name}: exit status 0 after a rank failed"
        assert expect_in_stderr in err, f"expected '{expect_in_stderr}' in stderr: {err}"
        print(f"{signal.Signals(sig).name} on rank 1: job ended with status {p.returncode} after {secs:.1f} s")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        for pid in rank_pids(p.pid).values():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def main():
    check(signal.SIGKILL, "")
    check(signal.SIGSTOP, "did not complete within 2.0 s")
    print("ok")


if __name__ == "__main__":
    sys.exit(main())
