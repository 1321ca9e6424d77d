"""The HTTP layer under abuse, with raw sockets: half a request then silence (408, closed), a
thousand idle keep-alive connections while others are served, oversized bodies and headers,
garbage, pipelining, HTTP/1.0, and SIGTERM: drain (in-flight requests complete, exit 0), or
a second signal that cancels them."""
import concurrent.futures
import http.client
import json
import os
import resource
import signal
import socket
import time
import unittest

from serverlib import DATA, Server, raw_exchange

MODEL_DIR = os.path.join(DATA, "tiny-v2-lite")
READ_TIMEOUT = 2
server = None


def setUpModule():
    global server
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    server = Server("--model", MODEL_DIR, "--request-read-timeout", str(READ_TIMEOUT),
                    "--max-request-body-bytes", "64KiB")


def tearDownModule():
    if server:
        server.stop_cleanly()


def completion(port, max_tokens=4):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST", "/v1/completions", json.dumps({"prompt": [5, 6, 7], "max_tokens": max_tokens,
                                                        "temperature": 0, "ignore_eos": True}))
    resp = conn.getresponse()
    body = json.loads(resp.read())
    conn.close()
    return resp.status, body


def status_of(response_bytes):
    return int(response_bytes.split(b" ", 2)[1]) if response_bytes.startswith(b"HTTP/1.1 ") else None


class Robustness(unittest.TestCase):
    def test_stalled_half_request_times_out(self):
        start = time.time()
        body = b'{"prompt": [1, 2'
        out = raw_exchange(server.port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + body,
                           timeout=30)
        elapsed = time.time() - start
        self.assertEqual(status_of(out), 408, out)
        self.assertIn(b"Connection: close", out)
        self.assertGreaterEqual(elapsed, READ_TIMEOUT - 0.5)
        self.assertLess(elapsed, READ_TIMEOUT + 10)
        # Half a header line, too.
        out = raw_exchange(server.port, b"GET /heal", timeout=30)
        self.assertEqual(status_of(out), 408, out)
        # A connection that never sends a byte is closed at the keep-alive timeout, without a
        # response; meanwhile the server answers others.
        self.assertEqual(completion(server.port)[0], 200)

    def test_thousand_idle_keepalive_connections(self):
        idle = []
        try:
            for i in range(1000):
                s = socket.create_connection(("127.0.0.1", server.port), timeout=30)
                idle.append(s)
                if i % 2 == 0:  # half have made a request and keep the connection open
                    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            for s in idle[::2]:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += s.recv(4096)
                self.assertEqual(status_of(data), 200)
                self.assertIn(b"Connection: keep-alive", data)
            start = time.time()
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                results = list(pool.map(lambda _: completion(server.port), range(8)))
            self.assertTrue(all(status == 200 for status, _ in results), results)
            self.assertLess(time.time() - start, 60)
            m = server.metrics()
            self.assertGreaterEqual(m["dsinfer_http_connections_open"], 1000)
            # The idle ones still work.
            for s in idle[:10]:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                data = b""
                while b"\r\n\r\n" not in data:
                    data += s.recv(4096)
                self.assertEqual(status_of(data), 200)
        finally:
            for s in idle:
                s.close()
        deadline = time.time() + 10
        while server.metrics()["dsinfer_http_connections_open"] > 5 and time.time() < deadline:
            time.sleep(0.1)
        self.assertLessEqual(server.metrics()["dsinfer_http_connections_open"], 5)

    def test_oversized_body_and_header(self):
        payload = json.dumps({"prompt": "x" * 100000}).encode()
        head = b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: " + str(len(payload)).encode() + b"\r\n\r\n"
        out = raw_exchange(server.port, head + payload[:1000])
        self.assertEqual(status_of(out), 413, out)
        self.assertIn(b"65536", out)
        # Chunked uploads are counted too.
        chunked = b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        chunk = b"x" * 40000
        out = raw_exchange(server.port, chunked + (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * 2)
        self.assertEqual(status_of(out), 413, out)
        out = raw_exchange(server.port, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100000 + b"\r\n\r\n")
        self.assertEqual(status_of(out), 431, out)
        self.assertEqual(completion(server.port)[0], 200)

    def test_garbage_and_protocol_edges(self):
        out = raw_exchange(server.port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all\r\n\r\n")
        self.assertEqual(status_of(out), 400, out)
        # Two pipelined requests on one connection: two responses, in order.
        out = raw_exchange(server.port, b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n"
                                        b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        self.assertEqual(out.count(b"HTTP/1.1 200 OK"), 2, out)
        self.assertLess(out.index(b'"version"'), out.rindex(b"HTTP/1.1 200 OK"))
        # HTTP/1.0 streams end by closing the connection (no chunked encoding).
        payload = json.dumps({"prompt": [3, 4], "max_tokens": 3, "stream": True}).encode()
        out = raw_exchange(server.port, b"POST /v1/completions HTTP/1.0\r\nContent-Length: "
                           + str(len(payload)).encode() + b"\r\n\r\n" + payload)
        self.assertIn(b"Connection: close", out)
        self.assertNotIn(b"Transfer-Encoding", out)
        self.assertTrue(out.rstrip().endswith(b"data: [DONE]"), out[-200:])

    def test_write_to_vanished_client_is_harmless(self):
        # Long streams whose clients reset the connection: five once their stream has started
        # (so the server is writing to a vanished peer: each must be aborted), five at once
        # (the server may never have read them; whichever started must be aborted too). None
        # could finish by itself in the time allowed, and the server goes on.
        started_key = 'dsinfer_http_requests_total{route="/v1/completions",status="200"}'
        aborted_key = 'dsinfer_request_success_total{finished_reason="abort"}'
        before = server.metrics()
        payload = json.dumps({"prompt": [3, 4], "max_tokens": 160000, "stream": True, "ignore_eos": True}).encode()
        request = (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: " + str(len(payload)).encode()
                   + b"\r\n\r\n" + payload)
        linger_reset = b"\x01\x00\x00\x00\x00\x00\x00\x00"  # l_onoff 1, l_linger 0: close sends RST
        for wait_for_stream in [True] * 5 + [False] * 5:
            s = socket.create_connection(("127.0.0.1", server.port), timeout=60)
            s.sendall(request)
            if wait_for_stream:
                data = b""
                while b"data: " not in data:
                    chunk = s.recv(65536)
                    self.assertTrue(chunk, "the server closed the stream before its first event")
                    data += chunk
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger_reset)
            s.close()
        deadline = time.time() + 20
        while time.time() < deadline:
            m = server.metrics()
            started = m.get(started_key, 0) - before.get(started_key, 0)
            aborted = m.get(aborted_key, 0) - before.get(aborted_key, 0)
            if m["dsinfer_num_requests_running"] == 0 and m["dsinfer_num_requests_waiting"] == 0 and aborted == started:
                break
            time.sleep(0.05)
        self.assertGreaterEqual(started, 5)  # at least the five whose streams we saw
        self.assertLessEqual(started, 10)
        self.assertEqual(aborted, started)
        self.assertEqual(m["dsinfer_num_requests_running"], 0)
        self.assertEqual(m["dsinfer_kv_cache_blocks_used"], 0)
        self.assertEqual(completion(server.port)[0], 200)


class Shutdown(unittest.TestCase):
    def test_sigterm_drains(self):
        # The drain must outlast the 3,000-token stream however slow the build (ASan takes ~30 s,
        # the default --shutdown-timeout): the cancel after the timeout is test_second_signal_cancels'.
        s = Server("--model", MODEL_DIR, "--shutdown-timeout", "600")
        try:
            payload = json.dumps({"prompt": [5, 6, 7], "max_tokens": 3000, "temperature": 0, "ignore_eos": True,
                                  "stream": True, "return_token_ids": True}).encode()
            sock = socket.create_connection(("127.0.0.1", s.port), timeout=120)
            sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: "
                         + str(len(payload)).encode() + b"\r\n\r\n" + payload)
            data = b""
            while b"data: " not in data:  # the stream has started
                data += sock.recv(65536)
            # The engine publishes its stats after handing a step's output over, so the first
            # event can arrive before the request shows as running: wait for the gauge, which
            # is what the drain message reports.
            deadline = time.time() + 10
            while s.metrics()["dsinfer_num_requests_running"] != 1 and time.time() < deadline:
                time.sleep(0.01)
            s.proc.send_signal(signal.SIGTERM)
            # New work is refused while the stream finishes: 503, or no longer listening.
            time.sleep(0.3)
            try:
                status, _ = completion(s.port)
                self.assertEqual(status, 503)
            except (ConnectionRefusedError, ConnectionResetError, http.client.RemoteDisconnected):
                pass
            while True:  # the server closes the connection once the stream is complete
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
            sock.close()
            events = [json.loads(line[6:]) for line in data.decode().splitlines() if line.startswith("data: {")]
            ids = [t for e in events for c in e["choices"] for t in c.get("token_ids", [])]
            self.assertEqual(len(ids), 3000)
            self.assertIn(b"data: [DONE]", data)
            self.assertTrue(data.endswith(b"0\r\n\r\n"), data[-100:])
            self.assertEqual(s.proc.wait(60), 0)
            self.assertIn("draining (no new requests; 1 running", s.log_text())  # it was in flight
        finally:
            s.kill()

    def test_second_signal_cancels(self):
        s = Server("--model", MODEL_DIR)
        try:
            body = {"prompt": [5, 6, 7], "max_tokens": 100000, "ignore_eos": True, "stream": True}
            conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=120)
            conn.request("POST", "/v1/completions", json.dumps(body))
            resp = conn.getresponse()
            resp.fp.readline()
            s.proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            s.proc.send_signal(signal.SIGINT)
            start = time.time()
            self.assertEqual(s.proc.wait(60), 0)
            self.assertLess(time.time() - start, 30)
            try:
                resp.read()
            except (http.client.IncompleteRead, ConnectionError):
                pass
            conn.close()
            self.assertIn("cancelling", s.log_text())
        finally:
            s.kill()


if __name__ == "__main__":
    unittest.main(verbosity=2)
