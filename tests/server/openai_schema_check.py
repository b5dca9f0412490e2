#!/usr/bin/env python3
"""`mmfp4 serve` end to end, checked against the OpenAI API reference's response types.

The official `openai` Python package is not installable here, so this test carries the field names and types of
its response models (openai.types: Completion, ChatCompletion, ChatCompletionChunk, Model, the error object) as
small schemas and validates every response against them: required fields present with the right types,
literals (object names, finish reasons, roles) among the allowed values, optional fields null or well typed.
It also checks the API key, /health, streaming framing and usage, and that the server stops cleanly on SIGTERM.

usage: openai_schema_check.py MMFP4_BINARY MODEL_DIR
"""
import http.client
import json
import re
import signal
import subprocess
import sys
import time

# ---------------------------------------------------------------------------------------------------------------
# A minimal schema language: a Python type, Lit(...), Opt(spec) (may be null or absent), [spec] (list),
# Map(spec) (dict of str -> spec), or a dict of field -> spec (extra fields allowed, as the client allows them).
# ---------------------------------------------------------------------------------------------------------------


class Lit:
    def __init__(self, *values):
        self.values = values


class Opt:
    def __init__(self, spec):
        self.spec = spec


class Map:
    def __init__(self, spec):
        self.spec = spec


def check(value, spec, path="$"):
    if isinstance(spec, Opt):
        if value is not None:
            check(value, spec.spec, path)
        return
    if isinstance(spec, Lit):
        assert value in spec.values, f"{path}: {value!r} is not one of {spec.values}"
        return
    if isinstance(spec, list):
        assert isinstance(value, list), f"{path}: expected a list, got {value!r}"
        for i, v in enumerate(value):
            check(v, spec[0], f"{path}[{i}]")
        return
    if isinstance(spec, Map):
        assert isinstance(value, dict), f"{path}: expected an object, got {value!r}"
        for k, v in value.items():
            assert isinstance(k, str)
            check(v, spec.spec, f"{path}.{k}")
        return
    if isinstance(spec, dict):
        assert isinstance(value, dict), f"{path}: expected an object, got {value!r}"
        for field, fspec in spec.items():
            if field not in value:
                assert isinstance(fspec, Opt), f"{path}: required field '{field}' is missing"
                continue
            check(value[field], fspec, f"{path}.{field}")
        return
    if spec is float:
        assert isinstance(value, (int, float)) and not isinstance(value, bool), f"{path}: expected a number, got {value!r}"
        return
    if spec is int:
        assert isinstance(value, int) and not isinstance(value, bool), f"{path}: expected an integer, got {value!r}"
        return
    assert isinstance(value, spec), f"{path}: expected {spec.__name__}, got {value!r}"


# openai.types.CompletionUsage
USAGE = {
    "prompt_tokens": int,
    "completion_tokens": int,
    "total_tokens": int,
    "prompt_tokens_details": Opt({"cached_tokens": Opt(int), "audio_tokens": Opt(int)}),
    "completion_tokens_details": Opt(dict),
}
# openai.types.completion_choice.Logprobs
COMPLETION_LOGPROBS = {
    "text_offset": Opt([int]),
    "token_logprobs": Opt([float]),
    "tokens": Opt([str]),
    "top_logprobs": Opt([Map(float)]),
}
# openai.types.Completion (also each streamed chunk of /v1/completions)
COMPLETION = {
    "id": str,
    "object": Lit("text_completion"),
    "created": int,
    "model": str,
    "system_fingerprint": Opt(str),
    "choices": [{
        "index": int,
        "text": str,
        "logprobs": Opt(COMPLETION_LOGPROBS),
        "finish_reason": Lit("stop", "length", "content_filter"),
    }],
    "usage": Opt(USAGE),
}
COMPLETION_CHUNK = dict(COMPLETION)
COMPLETION_CHUNK["choices"] = [dict(COMPLETION["choices"][0], finish_reason=Opt(Lit("stop", "length", "content_filter")))]
# openai.types.chat.ChatCompletionTokenLogprob
TOKEN_LOGPROB = {
    "token": str,
    "logprob": float,
    "bytes": Opt([int]),
    "top_logprobs": [{"token": str, "logprob": float, "bytes": Opt([int])}],
}
CHAT_LOGPROBS = {"content": Opt([TOKEN_LOGPROB]), "refusal": Opt([TOKEN_LOGPROB])}
CHAT_FINISH = Lit("stop", "length", "tool_calls", "content_filter", "function_call")
# openai.types.chat.ChatCompletion
CHAT = {
    "id": str,
    "object": Lit("chat.completion"),
    "created": int,
    "model": str,
    "service_tier": Opt(str),
    "system_fingerprint": Opt(str),
    "choices": [{
        "index": int,
        "message": {"role": Lit("assistant"), "content": Opt(str), "refusal": Opt(str), "tool_calls": Opt(list)},
        "logprobs": Opt(CHAT_LOGPROBS),
        "finish_reason": CHAT_FINISH,
    }],
    "usage": Opt(USAGE),
}
# openai.types.chat.ChatCompletionChunk
CHAT_CHUNK = {
    "id": str,
    "object": Lit("chat.completion.chunk"),
    "created": int,
    "model": str,
    "system_fingerprint": Opt(str),
    "choices": [{
        "index": int,
        "delta": {"role": Opt(Lit("developer", "system", "user", "assistant", "tool")), "content": Opt(str),
                  "refusal": Opt(str), "tool_calls": Opt(list)},
        "logprobs": Opt(CHAT_LOGPROBS),
        "finish_reason": Opt(CHAT_FINISH),
    }],
    "usage": Opt(USAGE),
}
MODEL = {"id": str, "object": Lit("model"), "created": int, "owned_by": str}
MODEL_LIST = {"object": Lit("list"), "data": [MODEL]}
ERROR = {"error": {"message": str, "type": str, "param": Opt(str), "code": Opt(str)}}

# ---------------------------------------------------------------------------------------------------------------

KEY = "sk-schema-test"


class Server:
    def __init__(self, binary, model):
        self.proc = subprocess.Popen(
            [binary, "serve", "-m", model, "--device", "cpu", "--ctx", "256", "--port", "0", "--api-key", KEY,
             "--max-batch", "4"],
            stderr=subprocess.PIPE, text=True)
        line = self.proc.stderr.readline()
        m = re.search(r"listening on http://([^:]+):(\d+)", line)
        assert m, f"no 'listening on' line from mmfp4 serve: {line!r}"
        self.host, self.port = m.group(1), int(m.group(2))

    def request(self, method, path, body=None, key=KEY, raw_body=None):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        data = raw_body if raw_body is not None else (json.dumps(body) if body is not None else None)
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        payload = resp.read().decode()
        conn.close()
        return resp.status, resp.getheader("Content-Type", ""), payload

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError("mmfp4 serve did not stop within 20 s of SIGTERM")
        assert rc == 0, f"mmfp4 serve exited with {rc}: {self.proc.stderr.read()}"


def sse_events(body):
    assert body.endswith("data: [DONE]\n\n"), body[-200:]
    events = body.split("\n\n")[:-1]
    for e in events:
        assert e.startswith("data: ") and "\n" not in e, repr(e)
    return [e[len("data: "):] for e in events]


def main():
    binary, model = sys.argv[1], sys.argv[2]
    srv = Server(binary, model)
    try:
        # /health: 503 with an error object while loading, then 200.
        deadline = time.time() + 60
        while True:
            status, _, body = srv.request("GET", "/health", key=None)
            if status == 200:
                assert json.loads(body) == {"status": "ok"}, body
                break
            assert status == 503, (status, body)
            check(json.loads(body), ERROR)
            assert time.time() < deadline, "the model did not load within 60 s"
            time.sleep(0.05)

        status, _, body = srv.request("GET", "/v1/models")
        assert status == 200, body
        check(json.loads(body), MODEL_LIST)

        # Completions: text prompt, token prompt, logprobs, n, stop.
        for req in ({"model": "tiny-qwen3-mmfp4", "prompt": "Once upon a time", "max_tokens": 12},
                    {"prompt": [1, 2, 3, 4], "max_tokens": 5, "logprobs": 0},
                    {"prompt": ["Hello", "World"], "max_tokens": 4, "n": 2, "stop": ["\n", "."], "seed": 5,
                     "temperature": 0.8}):
            status, ctype, body = srv.request("POST", "/v1/completions", req)
            assert status == 200 and ctype.startswith("application/json"), (status, body)
            v = json.loads(body)
            check(v, COMPLETION)
            assert [c["index"] for c in v["choices"]] == list(range(len(v["choices"])))
            u = v["usage"]
            assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]

        # Chat, with logprobs.
        msgs = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hi"}]
        status, _, body = srv.request("POST", "/v1/chat/completions",
                                      {"model": "tiny-qwen3-mmfp4", "messages": msgs, "max_tokens": 10, "logprobs": True})
        assert status == 200, body
        chat = json.loads(body)
        check(chat, CHAT)
        assert len(chat["choices"][0]["logprobs"]["content"]) == chat["usage"]["completion_tokens"]

        # Streams: every chunk is a chunk object, usage last (with include_usage), then [DONE].
        status, ctype, body = srv.request("POST", "/v1/chat/completions",
                                          {"messages": msgs, "max_tokens": 10, "stream": True,
                                           "stream_options": {"include_usage": True}})
        assert status == 200 and ctype.startswith("text/event-stream"), (status, ctype)
        events = sse_events(body)
        assert events[-1] == "[DONE]"
        chunks = [json.loads(e) for e in events[:-1]]
        for c in chunks:
            check(c, CHAT_CHUNK)
        assert chunks[0]["choices"][0]["delta"].get("role") == "assistant"
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
        assert all(c["usage"] is None for c in chunks[:-1])
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1] if c["choices"])
        assert text == chat["choices"][0]["message"]["content"], (text, chat)

        status, _, body = srv.request("POST", "/v1/completions",
                                      {"prompt": "Once upon a time", "max_tokens": 12, "stream": True})
        chunks = [json.loads(e) for e in sse_events(body)[:-1]]
        for c in chunks:
            check(c, COMPLETION_CHUNK)
        assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")

        # Errors have the error object shape and their statuses.
        for method, path, req, key, raw, want in (
                ("POST", "/v1/completions", {"prompt": "x"}, None, None, 401),
                ("POST", "/v1/completions", {"prompt": "x"}, "wrong", None, 401),
                ("POST", "/v1/completions", None, KEY, "{not json", 400),
                ("POST", "/v1/completions", {"prompt": "x", "temperature": 9}, KEY, None, 400),
                ("POST", "/v1/completions", {"prompt": "x", "max_tokens": 100000}, KEY, None, 400),
                ("POST", "/v1/chat/completions", {"messages": []}, KEY, None, 400),
                ("POST", "/v1/completions", {"prompt": "x", "model": "nope"}, KEY, None, 404),
                ("GET", "/v1/completions", None, KEY, None, 405),
                ("GET", "/nothing", None, KEY, None, 404)):
            status, ctype, body = srv.request(method, path, req, key=key, raw_body=raw)
            assert status == want, (path, req, status, body)
            assert ctype.startswith("application/json"), ctype
            check(json.loads(body), ERROR)

        status, ctype, body = srv.request("GET", "/metrics", key=None)
        assert status == 200 and ctype.startswith("text/plain"), status
        assert "mmfp4_time_to_first_token_seconds_count" in body
    finally:
        srv.stop()
    print("openai schema check: ok")


if __name__ == "__main__":
    main()
