"""Request framing and HEAD, with raw sockets against a real server.

Framing (RFC 9112 section 6): every request whose header leaves the end of its body in doubt
is answered 400 and the connection closed, so the bytes after it are never read as a request
(request smuggling). Each case sends a smuggled `GET /version` behind the bad request: it
must not be answered. HEAD on a GET route answers as GET would, without the body."""
import http.client
import json
import os
import socket
import unittest

from serverlib import DATA, Server

MODEL_DIR = os.path.join(DATA, "tiny-v2-lite")
SMUGGLED = b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n"
BODY = json.dumps({"prompt": [5, 6], "max_tokens": 1, "temperature": 0}).encode()
server = None


def setUpModule():
    global server
    server = Server("--model", MODEL_DIR)


def tearDownModule():
    if server:
        server.stop_cleanly()


def exchange(data, timeout=10):
    """Sends `data`, reads until the server closes; (bytes, closed). closed is False when the
    server kept the connection open past `timeout` seconds."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                return b"".join(chunks), False
            except ConnectionResetError:
                return b"".join(chunks), True
            if not chunk:
                return b"".join(chunks), True
            chunks.append(chunk)


def post(headers, body=b""):
    return b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n" + body


def chunked(body):
    return b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"


class Framing(unittest.TestCase):
    def assert_refused(self, name, data):
        out, closed = exchange(data, timeout=5)
        with self.subTest(name):
            self.assertTrue(out.startswith(b"HTTP/1.1 400 "), out[:300])
            head, _, body = out.partition(b"\r\n\r\n")
            self.assertIn(b"Connection: close", head)
            self.assertIn(b"malformed HTTP request", body)
            self.assertEqual(out.count(b"HTTP/1.1 "), 1, out)  # the smuggled request is not answered
            self.assertNotIn(b'"version"', out)
            self.assertTrue(closed, "the connection stayed open after a framing error")

    def test_transfer_codings_other_than_final_chunked(self):
        for coding in [b"xchunked", b"identity", b"chunked, gzip", b"gzip", b"gzip, chunked", b"chunked, chunked",
                       b"chunked;ext=1", b"", b"chunkedx", b"compress", b"deflate, chunked", b"\"chunked\""]:
            self.assert_refused(coding, post(b"Transfer-Encoding: " + coding + b"\r\n", chunked(BODY) + SMUGGLED))
            self.assert_refused(coding, post(b"Transfer-Encoding: " + coding + b"\r\n", SMUGGLED))

    def test_two_transfer_encoding_fields(self):
        self.assert_refused("gzip then chunked", post(b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
                                                      chunked(BODY) + SMUGGLED))
        self.assert_refused("chunked twice", post(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                                                  chunked(BODY) + SMUGGLED))

    def test_content_length_with_transfer_encoding(self):
        n = b"%d" % len(BODY)
        self.assert_refused("CL then TE", post(b"Content-Length: " + n + b"\r\nTransfer-Encoding: chunked\r\n",
                                               chunked(BODY) + SMUGGLED))
        self.assert_refused("TE then CL", post(b"Transfer-Encoding: chunked\r\nContent-Length: " + n + b"\r\n",
                                               chunked(BODY) + SMUGGLED))
        self.assert_refused("CL with identity", post(b"Content-Length: " + n + b"\r\nTransfer-Encoding: identity\r\n",
                                                     BODY + SMUGGLED))

    def test_bad_content_length(self):
        n = len(BODY)
        for name, field in [("same twice", b"Content-Length: %d\r\nContent-Length: %d\r\n" % (n, n)),
                            ("two values", b"Content-Length: %d\r\nContent-Length: 0\r\n" % n),
                            ("a list", b"Content-Length: %d, %d\r\n" % (n, n)),
                            ("signed", b"Content-Length: +%d\r\n" % n), ("negative", b"Content-Length: -1\r\n"),
                            ("hex", b"Content-Length: 0x%x\r\n" % n), ("empty", b"Content-Length: \r\n"),
                            ("overflow", b"Content-Length: 99999999999999999999999\r\n"),
                            ("letters", b"Content-Length: %da\r\n" % n)]:
            self.assert_refused(name, post(field, BODY + SMUGGLED))

    def test_obs_fold(self):
        n = len(BODY)
        self.assert_refused("folded X-A", post(b"X-A: a\r\n b\r\nContent-Length: %d\r\n" % n, BODY + SMUGGLED))
        self.assert_refused("folded Content-Length", post(b"Content-Length:\r\n %d\r\n" % n, BODY + SMUGGLED))
        self.assert_refused("tab fold", post(b"Content-Length: %d\r\nX-A: a\r\n\tb\r\n" % n, BODY + SMUGGLED))
        self.assert_refused("space before the first field",
                            b"POST /v1/completions HTTP/1.1\r\n Content-Length: %d\r\nHost: x\r\n\r\n" % n + BODY + SMUGGLED)

    def test_bare_line_endings(self):
        n = len(BODY)
        self.assert_refused("bare LF everywhere",
                            b"POST /v1/completions HTTP/1.1\nHost: x\nContent-Length: %d\n\n" % n + BODY + SMUGGLED)
        self.assert_refused("one bare LF", post(b"X-A: a\nContent-Length: %d\r\n" % n, BODY + SMUGGLED))
        self.assert_refused("bare CR", post(b"X-A: a\rContent-Length: 5\r\n", BODY + SMUGGLED))
        self.assert_refused("bare LF in the chunk framing",
                            post(b"Transfer-Encoding: chunked\r\n", b"%x\n" % n + BODY + b"\n0\n\n" + SMUGGLED))

    def test_other_framing_errors(self):
        self.assert_refused("TE in HTTP/1.0", b"POST /v1/completions HTTP/1.0\r\nConnection: keep-alive\r\n"
                            b"Transfer-Encoding: chunked\r\n\r\n" + chunked(BODY) + SMUGGLED)
        self.assert_refused("space before the colon", post(b"Content-Length : %d\r\n" % len(BODY), BODY + SMUGGLED))
        self.assert_refused("chunk size overflow", post(b"Transfer-Encoding: chunked\r\n",
                                                        b"fffffffffffffffff1\r\n" + SMUGGLED))

    def test_valid_framings_are_served(self):
        # The same bodies with unambiguous framing: answered, and the next request on the
        # connection too.
        n = len(BODY)
        for name, data in [("Content-Length", post(b"Content-Length: %d\r\n" % n, BODY)),
                           ("chunked", post(b"Transfer-Encoding: chunked\r\n", chunked(BODY))),
                           ("Chunked, padded", post(b"Transfer-Encoding:  Chunked \r\n", chunked(BODY))),
                           ("chunk extension", post(b"Transfer-Encoding: chunked\r\n",
                                                    b"%x;a=b\r\n" % n + BODY + b"\r\n0\r\n\r\n")),
                           ("leading empty line", b"\r\n" + post(b"Content-Length: %d\r\n" % n, BODY))]:
            out, _ = exchange(data + b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            with self.subTest(name):
                self.assertEqual(out.count(b"HTTP/1.1 200 OK"), 2, out[:500])
                self.assertIn(b'"version"', out)

    def test_server_still_serves(self):
        self.assert_refused("xchunked", post(b"Transfer-Encoding: xchunked\r\n", SMUGGLED))
        status, _, body = server.request("GET", "/health")
        self.assertEqual(status, 200)
        status, body = server.post("/v1/completions", {"prompt": [5, 6], "max_tokens": 2})
        self.assertEqual(status, 200, body)


class Head(unittest.TestCase):
    def test_head_answers_like_get_without_body(self):
        model = json.loads(server.request("GET", "/v1/models")[2])["data"][0]["id"]
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            for path in ["/health", "/version", "/v1/models", f"/v1/models/{model}", "/metrics"]:
                conn.request("GET", path)
                get = conn.getresponse()
                get_body = get.read()
                conn.request("HEAD", path)
                head = conn.getresponse()
                with self.subTest(path):
                    self.assertEqual(head.status, get.status)
                    self.assertEqual(head.getheader("Content-Type"), get.getheader("Content-Type"))
                    length = int(head.getheader("Content-Length"))
                    if path != "/metrics":  # the metrics change between the two requests
                        self.assertEqual(length, len(get_body))
                    else:
                        self.assertGreater(length, 0)
                    self.assertEqual(head.read(), b"")
                    self.assertEqual(head.getheader("Connection"), "keep-alive")
        finally:
            conn.close()

    def test_head_sends_no_body_bytes(self):
        # Pipelined: the byte after HEAD's header must be the next response's status line.
        out, _ = exchange(b"HEAD /v1/models HTTP/1.1\r\nHost: x\r\n\r\n"
                          b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        first, _, rest = out.partition(b"\r\n\r\n")
        self.assertTrue(first.startswith(b"HTTP/1.1 200 OK"), out[:300])
        self.assertNotIn(b"Content-Length: 0\r", first)
        self.assertTrue(rest.startswith(b"HTTP/1.1 200 OK"), out[:500])
        self.assertTrue(rest.endswith(b'"version":"0.1.0"}'), rest[-100:])

    def test_wrong_method_names_the_allowed_ones(self):
        status, headers, body = server.request("POST", "/health", body="")
        self.assertEqual(status, 405)
        self.assertEqual(headers.get("allow"), "GET, HEAD")
        self.assertIn(b"GET or HEAD", body)
        status, headers, body = server.request("HEAD", "/v1/completions")
        self.assertEqual(status, 405)
        self.assertEqual(headers.get("allow"), "POST")
        self.assertEqual(body, b"")
        status, headers, _ = server.request("GET", "/v1/completions")
        self.assertEqual(headers.get("allow"), "POST")


if __name__ == "__main__":
    unittest.main(verbosity=2)
