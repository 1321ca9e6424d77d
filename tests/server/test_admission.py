"""A request's choices (prompts x n) are queued together or refused together, before any work:
more than the queue ever holds is a 400 naming the limits, more than it holds now a 503, and
neither leaves anything running. /metrics counts every queued choice as running or waiting."""
import http.client
import json
import os
import time
import unittest

from serverlib import DATA, Server

MODEL_DIR = os.path.join(DATA, "tiny-v2-lite")
# One running sequence and two waiting: three choices queued at most.
server = None


def setUpModule():
    global server
    server = Server("--model", MODEL_DIR, "--max-num-seqs", "1", "--max-waiting-requests", "2")


def tearDownModule():
    if server:
        server.stop_cleanly()


def completion(prompt, n=1, max_tokens=4, stream=False):
    return {"prompt": prompt, "n": n, "max_tokens": max_tokens, "temperature": 0.5, "seed": 1, "ignore_eos": True,
            "stream": stream}


def work_counters():
    m = server.metrics()
    return {k: m[k] for k in ("dsinfer_prompt_tokens_total", "dsinfer_generation_tokens_total",
                              "dsinfer_num_requests_running", "dsinfer_num_requests_waiting")}


def wait_idle(timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = server.metrics()
        if m["dsinfer_num_requests_running"] == 0 and m["dsinfer_num_requests_waiting"] == 0:
            return
        time.sleep(0.05)
    raise AssertionError("the server did not become idle")


class Admission(unittest.TestCase):
    def setUp(self):
        wait_idle()

    def test_more_choices_than_the_queue_holds_are_refused_whole(self):
        before = work_counters()
        for body in (completion([[5, 6, 7, i] for i in range(4)]),  # 4 prompts
                     completion([[5, 6, 7], [5, 6, 8]], n=2)):  # 2 prompts x n=2
            status, reply = server.post("/v1/completions", body)
            self.assertEqual(status, 400, reply)
            message = reply["error"]["message"]
            self.assertIn("4 requests", message)
            self.assertIn("--max-waiting-requests 2", message)
            self.assertIn("--max-num-seqs 1", message)
        time.sleep(0.3)  # a step or two, had anything been queued
        self.assertEqual(work_counters(), before, "a refused request ran partly")
        # Three choices fit.
        status, reply = server.post("/v1/completions", completion([[5, 6, 7], [5, 6, 8], [5, 6, 9]]))
        self.assertEqual(status, 200, reply)
        self.assertEqual(len(reply["choices"]), 3)

    def test_a_busy_queue_refuses_a_request_whole_and_the_metric_shows_it(self):
        # Three choices fill the queue: one runs, two wait.
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        conn.request("POST", "/v1/completions", json.dumps(completion([5, 6, 7], n=3, max_tokens=5000, stream=True)))
        resp = conn.getresponse()
        self.assertEqual(resp.status, 200)
        while not resp.readline().startswith(b"data: {"):
            pass
        try:
            m = server.metrics()
            self.assertEqual(m["dsinfer_num_requests_running"], 1)
            self.assertEqual(m["dsinfer_num_requests_waiting"], 2)
            for body in (completion([9, 9, 9]), completion([[9, 9, 9], [9, 9, 8]])):
                status, reply = server.post("/v1/completions", body)
                self.assertEqual(status, 503, reply)
                self.assertIn("overloaded", reply["error"]["message"])
                # Nothing of it was queued.
                m = server.metrics()
                self.assertEqual(m["dsinfer_num_requests_running"] + m["dsinfer_num_requests_waiting"], 3)
        finally:
            conn.close()  # the client goes away: its choices are aborted
        wait_idle()


if __name__ == "__main__":
    unittest.main(verbosity=2)
