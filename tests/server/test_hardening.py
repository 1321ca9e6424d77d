"""Hostile requests against a real `dsinfer serve`: deep JSON, numbers no field can hold,
huge echoed input, small API inconsistencies (issue 9). Each must end in a clean 4xx naming
the field, with the server still serving; and a KV cache larger than the machine is a clear
startup error."""
import http.client
import json
import os
import subprocess
import unittest

from serverlib import BIN, Server

API_KEY = "hardening-key"
AUTH = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
DEEP = 70000  # the case: a recursive walk of this overflows the stack
server = None


def setUpModule():
    global server
    server = Server("--api-key", API_KEY, "--max-model-len", "256")


def tearDownModule():
    if server:
        server.stop_cleanly()


def raw_post(path, body, headers=AUTH):
    """POST a body given as text (to send what json.dumps cannot or will not write)."""
    status, hdrs, data = server.request("POST", path, body, headers)
    return status, hdrs, data


def deep_array(depth, leaf="1"):
    return "[" * depth + leaf + "]" * depth


def deep_object(depth):
    return '{"a":' * depth + "1" + "}" * depth


CHAT_START = '{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1, '


class Hardening(unittest.TestCase):
    def assert_error(self, status, data, want_status, param=None, words=()):
        self.assertEqual(status, want_status, data[:300])
        err = json.loads(data)["error"]
        self.assertEqual(set(err), {"message", "type", "param", "code"})
        if param is not None:
            self.assertEqual(err["param"], param, err)
        for w in words:
            self.assertIn(w, err["message"])
        return err

    def assert_alive(self):
        status, _, _ = server.request("GET", "/health")
        self.assertEqual(status, 200)
        status, _, data = raw_post("/v1/completions", json.dumps({"prompt": [5, 6], "max_tokens": 1}))
        self.assertEqual(status, 200, data[:300])

    def test_deep_json_is_a_400_everywhere(self):
        deep, deep_obj = deep_array(DEEP), deep_object(DEEP)
        cases = [
            ("/v1/completions", '{"prompt": ' + deep + '}', "prompt"),
            ("/v1/completions", '{"prompt": "hi", "stop_token_ids": ' + deep + '}', "stop_token_ids"),
            ("/v1/completions", '{"prompt": "hi", "stop": ' + deep + '}', "stop"),
            ("/v1/completions", '{"prompt": "hi", "logit_bias": ' + deep_obj + '}', "logit_bias"),
            ("/v1/completions", deep, ""),
            ("/detokenize", '{"tokens": ' + deep + '}', "tokens"),
            ("/tokenize", '{"prompt": ' + deep + '}', "prompt"),
            ("/tokenize", '{"messages": [{"role": "user", "content": ' + deep + '}]}', "messages"),
            ("/v1/chat/completions", '{"messages": [{"role": "assistant", "content": null, "tool_calls": '
             '[{"id": "c", "type": "function", "function": {"name": "f", "arguments": ' + deep_obj + '}}]}, '
             '{"role": "user", "content": "hi"}]}', "messages"),
            ("/v1/chat/completions", CHAT_START + '"tools": ' + deep + '}', "tools"),
            ("/v1/chat/completions", CHAT_START + '"chat_template_kwargs": ' + deep_obj + '}',
             "chat_template_kwargs"),
            ("/v1/chat/completions", CHAT_START + '"response_format": ' + deep_obj + '}', "response_format"),
        ]
        for path, body, param in cases:
            with self.subTest(path=path, param=param):
                status, _, data = raw_post(path, body)
                self.assert_error(status, data, 400, param=param or None, words=["nested deeper than 128"])
        self.assert_alive()

    def test_number_overflow_is_a_400_naming_the_field(self):
        cases = [
            ("/v1/completions", '{"prompt": "hi", "max_tokens": 1e400}', "max_tokens"),
            ("/v1/completions", '{"prompt": "hi", "max_tokens": 99999999999999999999999}', "max_tokens"),
            ("/v1/completions", '{"prompt": "hi", "temperature": -1e400}', "temperature"),
            ("/v1/completions", '{"prompt": "hi", "seed": 1e4000}', "seed"),
            ("/v1/completions", '{"prompt": [1, 1e400]}', "prompt"),
            ("/v1/completions", '{"prompt": "hi", "stop_token_ids": [1e9]}', "stop_token_ids"),
            ("/v1/completions", '{"prompt": "hi", "stop_token_ids": [1000000000]}', "stop_token_ids"),
            ("/v1/chat/completions", CHAT_START + '"max_completion_tokens": 1e400}', "max_completion_tokens"),
            ("/v1/chat/completions", CHAT_START + '"stop_token_ids": [1000000000]}', "stop_token_ids"),
            ("/detokenize", '{"tokens": [1, 1e400]}', "tokens"),
            ("/tokenize", '{"prompt": "hi", "add_special_tokens": 1e400}', "add_special_tokens"),
        ]
        for path, body, param in cases:
            with self.subTest(body=body):
                status, _, data = raw_post(path, body)
                self.assert_error(status, data, 400, param=param)
        self.assert_alive()

    def test_detokenize_outside_the_vocabulary(self):
        status, _, data = raw_post("/detokenize", '{"tokens": [5, 2000000000]}')
        self.assert_error(status, data, 400, param="tokens", words=["2000000000", "vocabulary"])
        status, _, data = raw_post("/detokenize", '{"tokens": [5, 6]}')
        self.assertEqual(status, 200)

    def test_echoed_input_is_truncated(self):
        big = "k" * (1 << 20)
        cases = [
            ("/v1/completions", json.dumps({"prompt": "hi", big: 1})),
            ("/v1/completions", json.dumps({"prompt": "hi", "model": big})),
            ("/v1/completions", json.dumps({"prompt": [1, big]})),
            ("/v1/chat/completions", json.dumps({"messages": [{"role": big, "content": "x"}]})),
            ("/detokenize", json.dumps({"tokens": [big]})),
            ("/tokenize", json.dumps({big: 1})),
            ("/v1/completions", '{"prompt": "' + big + '\\q"}'),
        ]
        for path, body in cases:
            with self.subTest(path=path, body=body[:40]):
                status, _, data = raw_post(path, body)
                self.assertIn(status, (400, 404))
                self.assertLess(len(data), 2000)
                self.assertIn("bytes)", json.loads(data)["error"]["message"])
        self.assert_alive()

    def test_404s_agree_on_type(self):
        status, _, data = server.request("GET", "/no/such/route", headers=AUTH)
        route = self.assert_error(status, data, 404)
        status, _, data = raw_post("/v1/completions", json.dumps({"prompt": "x", "model": "nope"}))
        model = self.assert_error(status, data, 404, param="model")
        self.assertEqual(route["type"], model["type"])
        status, _, data = server.request("GET", "/v1/models/nope", headers=AUTH)
        self.assertEqual(self.assert_error(status, data, 404)["type"], route["type"])

    def test_repetition_penalty_has_one_range(self):
        # The parser's range is the sampler's: a value the sampler refuses is refused at
        # parse, naming the field (it used to pass parsing and fail later with param null).
        for value, ok in ((10, True), (10.5, False), (50, False)):
            with self.subTest(value=value):
                status, _, data = raw_post("/v1/completions", json.dumps(
                    {"prompt": [5, 6], "max_tokens": 1, "repetition_penalty": value}))
                if ok:
                    self.assertEqual(status, 200, data[:300])
                else:
                    self.assert_error(status, data, 400, param="repetition_penalty", words=["10"])

    def test_bearer_scheme_is_case_insensitive(self):
        for scheme in ("Bearer", "bearer", "BEARER", "bEaReR"):
            for spaces in (" ", "   "):
                with self.subTest(scheme=scheme, spaces=len(spaces)):
                    status, _, _ = server.request("GET", "/v1/models",
                                                  headers={"Authorization": scheme + spaces + API_KEY})
                    self.assertEqual(status, 200)
        for header in ("Basic " + API_KEY, "Bearer" + API_KEY, "Bearer wrong", "bearer"):
            status, _, _ = server.request("GET", "/v1/models", headers={"Authorization": header})
            self.assertEqual(status, 401, header)

    def test_401_carries_www_authenticate(self):
        status, headers, data = server.request("GET", "/v1/models")
        self.assert_error(status, data, 401)
        self.assertEqual(headers.get("www-authenticate"), "Bearer")
        status, headers, _ = server.request("GET", "/v1/models", headers={"Authorization": "Bearer wrong"})
        self.assertEqual(status, 401)
        self.assertEqual(headers.get("www-authenticate"), "Bearer")
        status, headers, _ = server.request("GET", "/v1/models", headers=AUTH)
        self.assertEqual(status, 200)
        self.assertNotIn("www-authenticate", headers)


def physical_memory_bytes():
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


class KvCacheTooLarge(unittest.TestCase):
    def test_more_than_the_machine_is_a_clear_startup_error(self):
        tib = 1 << 40
        size = max(tib, 2 * physical_memory_bytes())  # the 1TiB, or beyond this machine's memory
        out = subprocess.run([BIN, "serve", "--port", "0", "--threads", "1", "--kv-cache-memory", str(size)],
                             capture_output=True, text=True, timeout=300)
        self.assertNotEqual(out.returncode, 0)
        text = out.stdout + out.stderr
        self.assertNotIn("bad_alloc", text)
        self.assertIn("--kv-cache-memory", text)
        self.assertIn(str(size), text)  # what was asked
        # and what there is: host memory on the CPU backend, the device's on a GPU
        if "cuda:" in text:
            self.assertRegex(text, r"[0-9.]+ GiB free of [0-9.]+ GiB")
        else:
            self.assertIn("GiB physical", text)
            self.assertIn("available", text)


if __name__ == "__main__":
    unittest.main()
