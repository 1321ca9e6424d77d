"""Structured outputs through the official clients on the embedded default model (random
weights, the real DeepSeek-V3 tokenizer and its 129,280-token vocabulary): the content is
gibberish, but it must be valid JSON of the schema on every seed. openai's
`beta.chat.completions.parse` with a Pydantic model, langchain-openai's
`with_structured_output` in all three methods, tool_choice required and named, regex and
choice constraints, streaming and n > 1."""
import json
import re
import unittest
from typing import Literal

import openai
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field

from serverlib import Server

MODEL = "dsinfer-default"
SEEDS = range(3)
server = None
client = None


class Pet(BaseModel):
    """A pet (strings are bounded so that a random model finishes them)."""
    name: str = Field(max_length=6)
    age: int = Field(ge=0, le=30)
    kind: Literal["cat", "dog"]
    tags: list[Literal["a", "b"]] = Field(max_length=2)


def setUpModule():
    global server, client
    server = Server("--tool-call-parser", "deepseek_v3", "--enable-auto-tool-choice", "--max-model-len", "2k",
                    "--threads", "2")
    client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=300)


def tearDownModule():
    if server:
        server.stop_cleanly()


MESSAGES = [{"role": "user", "content": "Describe a pet."}]


class OpenAIClient(unittest.TestCase):
    def test_parse_with_a_pydantic_model_on_every_seed(self):
        for seed in SEEDS:
            r = client.beta.chat.completions.parse(model=MODEL, messages=MESSAGES, response_format=Pet, seed=seed,
                                                   temperature=1.0, max_tokens=200)
            msg = r.choices[0].message
            self.assertEqual(r.choices[0].finish_reason, "stop", msg.content)
            self.assertIsInstance(msg.parsed, Pet, msg.content)  # parse() validated it against the model
            Pet.model_validate_json(msg.content)

    def test_json_object_streaming_and_n(self):
        chunks = client.chat.completions.create(model=MODEL, messages=MESSAGES, seed=3, max_tokens=300, n=2,
                                                stream=True, response_format={"type": "json_object"},
                                                extra_body={"structured_outputs": None})
        texts = {0: "", 1: ""}
        for c in chunks:
            for ch in c.choices:
                texts[ch.index] += ch.delta.content or ""
        for t in texts.values():
            self.assertIsInstance(json.loads(t), dict, t)

    def test_regex_and_choice_with_logprobs(self):
        for seed in SEEDS:
            r = client.completions.create(model=MODEL, prompt="Phone:", max_tokens=20, seed=seed, logprobs=2,
                                          extra_body={"guided_regex": r"\+1-[0-9]{3}-[0-9]{4}"})
            self.assertRegex(r.choices[0].text, r"^\+1-[0-9]{3}-[0-9]{4}$")
            self.assertTrue(all(lp <= 0 for lp in r.choices[0].logprobs.token_logprobs))
            r = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=20, seed=seed,
                                               extra_body={"guided_choice": ["sunny", "rainy day", "snow"]})
            self.assertIn(r.choices[0].message.content, ["sunny", "rainy day", "snow"])

    def test_tool_choice_required_and_named(self):
        tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
            "type": "object", "properties": {"city": {"type": "string", "maxLength": 6},
                                             "days": {"type": "integer", "minimum": 1, "maximum": 7}},
            "required": ["city", "days"]}}},
                 {"type": "function", "function": {"name": "get_time", "parameters": {
                     "type": "object", "properties": {"tz": {"enum": ["UTC", "CET"]}}, "required": ["tz"]}}}]
        for seed in SEEDS:
            for choice in ("required", {"type": "function", "function": {"name": "get_time"}}):
                r = client.chat.completions.create(model=MODEL, messages=MESSAGES, tools=tools, tool_choice=choice,
                                                   seed=seed, max_tokens=300)
                c = r.choices[0]
                self.assertEqual(c.finish_reason, "tool_calls", c.message)
                for call in c.message.tool_calls:
                    args = json.loads(call.function.arguments)
                    if call.function.name == "get_time":
                        self.assertIn(args["tz"], ["UTC", "CET"])
                    else:
                        self.assertEqual(call.function.name, "get_weather")
                        self.assertLessEqual(len(args["city"]), 6)
                        self.assertIn(args["days"], range(1, 8))
                if choice != "required":
                    self.assertEqual({t.function.name for t in c.message.tool_calls}, {"get_time"})

    def test_bad_specs_are_400(self):
        for extra, param in [({"guided_regex": "(ab"}, "guided_regex"),
                             ({"guided_json": {"type": "strin"}}, "guided_json"),
                             ({"guided_grammar": "root ::= item"}, "guided_grammar"),
                             ({"guided_choice": ["a"], "guided_regex": "a"}, "guided_choice"),
                             ({"response_format": {"type": "yaml"}}, "response_format")]:
            status, body = server.post("/v1/chat/completions", {"messages": MESSAGES, "max_tokens": 2, **extra})
            self.assertEqual(status, 400, (extra, body))
            self.assertEqual(body["error"]["param"], param, body)


class LangChain(unittest.TestCase):
    def llm(self, seed):
        return ChatOpenAI(base_url=server.base_url, api_key="unused", model=MODEL, max_retries=0, seed=seed,
                          temperature=1.0, max_tokens=300)

    def test_with_structured_output_json_schema_and_function_calling(self):
        for method in ("json_schema", "function_calling"):
            for seed in SEEDS:
                with self.subTest(method=method, seed=seed):
                    out = self.llm(seed).with_structured_output(Pet, method=method).invoke("Describe a pet.")
                    self.assertIsInstance(out, Pet)

    def test_with_structured_output_json_mode(self):
        # json_mode asks for any JSON object (the prompt is meant to say which): a dict schema
        # gets the parsed object back.
        for seed in SEEDS:
            out = self.llm(seed).with_structured_output(Pet.model_json_schema(), method="json_mode").invoke(
                "Describe a pet as JSON.")
            self.assertIsInstance(out, dict)


if __name__ == "__main__":
    unittest.main()
