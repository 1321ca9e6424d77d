"""One client's large input must not stall another client's stream: a 15 MB one-word prompt
(about 5 s of tokenization here) is parsed and tokenized off the I/O thread, so the tokens of
a stream already running keep coming.

The bound on the stream's largest gap between events while the big request is processed is
1 s: with tokenization on the I/O thread the gap is the whole tokenization (about 5 s on the
2-core CI machine, measured), and off it the gaps stay at the engine's step time (a few ms for
this model; under 100 ms measured with the machine shared). 1 s is 5x under the first and
10x over the second, so it separates the two without timing the machine."""
import json
import os
import socket
import threading
import time
import unittest

from serverlib import DATA, Server

MODEL_DIR = os.path.join(DATA, "tiny-v2-lite")
MAX_GAP_S = 1.0


def request_bytes(body):
    data = json.dumps(body).encode()
    return b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: " + str(len(data)).encode() + b"\r\n\r\n" + data


class LatencyIsolation(unittest.TestCase):
    def test_big_prompt_does_not_stall_other_streams(self):
        s = Server("--model", MODEL_DIR)  # the default 16 MiB body limit
        try:
            big = request_bytes({"prompt": "a" * 15_000_000, "max_tokens": 1})
            stream = socket.create_connection(("127.0.0.1", s.port), timeout=60)
            stream.sendall(request_bytes({"prompt": [5, 6, 7], "max_tokens": 160000, "ignore_eos": True,
                                          "stream": True}))
            arrivals = []
            stop = threading.Event()

            def read_stream():
                pending = b""
                while not stop.is_set():
                    try:
                        chunk = stream.recv(65536)
                    except OSError:
                        return
                    if not chunk:
                        return
                    now = time.monotonic()
                    pending += chunk
                    n = pending.count(b"data: ")
                    arrivals.extend([now] * n)
                    pending = pending[pending.rfind(b"data: ") + 6:] if n else pending

            reader = threading.Thread(target=read_stream, daemon=True)
            reader.start()
            while len(arrivals) < 20:  # the stream runs
                time.sleep(0.01)
            sock = socket.create_connection(("127.0.0.1", s.port), timeout=120)
            start = time.monotonic()
            sock.sendall(big)
            answer = b""
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
            end = time.monotonic()
            sock.close()
            time.sleep(0.2)
            stop.set()
            stream.shutdown(socket.SHUT_RDWR)  # ends the reader's recv
            reader.join(10)
            stream.close()
            # The big prompt is far longer than the context (or outside the tiny vocabulary): a 400.
            self.assertTrue(answer.startswith(b"HTTP/1.1 400 "), answer[:300])
            window = [t for t in arrivals if start <= t <= end + 0.1]
            gaps = [b - a for a, b in zip(window, window[1:])]
            self.assertGreater(end - start, 1.0, "the big request was not big enough to measure anything")
            self.assertGreater(len(window), 10, f"{len(window)} events in {end - start:.2f} s")
            print(f"\nbig request answered in {end - start:.2f} s; other stream: {len(window)} events, "
                  f"largest gap {max(gaps) * 1000:.0f} ms")
            self.assertLess(max(gaps), MAX_GAP_S)
            s.stop_cleanly()
        finally:
            s.kill()


if __name__ == "__main__":
    unittest.main(verbosity=2)
