"""A scripted OpenAI-compatible chat-completions server for the judge tests and benchmark.

Stdlib only (asyncio protocol, HTTP/1.1 keep-alive), so it is light enough that the client, not the
server, is what a benchmark measures. It answers `POST /v1/chat/completions`; `GET /stats` returns
the counters as JSON and `POST /reset` clears them (for the subprocess mode).

What each request gets is scripted by its own content. Any message may carry a directive
    <<judge {"verdict": true, "script": ["429", "500"], "then": "ok", "sleep_s": 2.0}>>
`script[i]` is the action for the i-th attempt of this exact message list (attempts are counted
per request key, so retries and re-asks of one request walk through its script) and `then` the
action for every later attempt. Without a directive the verdict is a function of the content
(parity of its sha256) and the action is the server's `default_action` ("ok"). Actions:
    ok          200, '{"explanation": ..., "criteria_met": <verdict>}'
    fence       200, the same object inside a ```json fence with prose around it
    malformed   200, prose without any JSON object
    stringbool  200, criteria_met as the string "true" (not a JSON boolean)
    empty       200, message content null
    badbody     200, a body that is not JSON
    sleep       sleep `sleep_s` seconds (past the client's timeout), then answer "ok"
    429 / 500 / 503 / 400   that status with an OpenAI-style error body
    401echo     401 whose message echoes the Authorization header (as a careless server might)
    okecho      200, "ok" whose explanation quotes the Authorization header
A global `latency` (seconds) delays every answer.

Thread mode: `with ScriptedChatServer(latency=0.05) as srv: srv.base_url ...`.
Subprocess mode: `python tests/helpers/judge_server.py --latency 0.05` prints `PORT <n>` and serves
until stdin closes; `spawn_server(latency)` wraps that.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter

DIRECTIVE = re.compile(r"<<judge (\{.*?\})>>", re.S)
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests"}
_REASONS.update({500: "Internal Server Error", 503: "Service Unavailable"})


def directive(verdict: bool | None = None, script=(), then: str = "ok", sleep_s: float = 0.0) -> str:
    """The directive text to put in a message (tests build requests with it)."""
    d: dict = {"script": list(script), "then": then, "sleep_s": sleep_s}
    if verdict is not None:
        d["verdict"] = verdict
    return f"<<judge {json.dumps(d)}>>"


def request_key(messages: list[dict]) -> str:
    return hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:16]


class ChatLogic:
    """Counters and the scripted answer for one request body; shared by both modes."""

    def __init__(self, latency: float = 0.0, default_action: str = "ok"):
        self.latency = latency
        self.default_action = default_action  # the action of a request without a directive
        self.attempts: Counter[str] = Counter()  # request key -> attempts seen
        self.total = 0
        self.inflight: Counter[str] = Counter()  # per model name, so tests can tell their requests apart
        self.max_inflight: Counter[str] = Counter()
        self.last_authorization: str | None = None

    def reset(self) -> None:
        self.attempts.clear()
        self.total = 0
        self.max_inflight.clear()

    def stats(self) -> dict:
        most = max(self.attempts.values(), default=0)
        cpu = time.process_time()  # the server's CPU seconds (the benchmark reports them per request)
        return {"total": self.total, "unique": len(self.attempts), "max_attempts": most, "cpu_s": cpu}

    async def respond(self, method: str, path: str, headers: dict, body: bytes) -> tuple[int, bytes]:
        if method == "GET" and path == "/stats":
            return 200, json.dumps(self.stats()).encode()
        if method == "POST" and path == "/reset":
            self.reset()
            return 200, b"{}"
        if method != "POST" or not path.endswith("/chat/completions"):
            return 404, _error("not found", "not_found")
        req = json.loads(body)
        model = str(req.get("model"))
        self.inflight[model] += 1
        self.max_inflight[model] = max(self.max_inflight[model], self.inflight[model])
        try:
            return await self._chat(req, headers)
        finally:
            self.inflight[model] -= 1

    async def _chat(self, req: dict, headers: dict) -> tuple[int, bytes]:
        messages = req["messages"]
        key = request_key(messages)
        attempt = self.attempts[key]
        self.attempts[key] += 1
        self.total += 1
        self.last_authorization = headers.get("authorization")
        text = "\n".join(m.get("content") or "" for m in messages)
        found = DIRECTIVE.search(text)
        d = json.loads(found.group(1)) if found else {}
        script = d.get("script", [])
        action = script[attempt] if attempt < len(script) else d.get("then", self.default_action)
        verdict = d.get("verdict", hashlib.sha256(text.encode()).digest()[0] % 2 == 1)
        if self.latency:
            await asyncio.sleep(self.latency)
        if action == "sleep":
            await asyncio.sleep(float(d.get("sleep_s", 5.0)))
            action = "ok"
        if action in {"400", "429", "500", "503"}:
            return int(action), _error(f"scripted {action}", "server_error")
        if action == "401echo":
            return 401, _error(
                f"Incorrect API key provided: {headers.get('authorization')}", "invalid_api_key"
            )
        if action == "okecho":
            echo = json.dumps(
                {"explanation": f"you sent {headers.get('authorization')}", "criteria_met": verdict}
            )
            return 200, _completion(req.get("model", "?"), echo, len(text))
        if action == "badbody":
            return 200, b"<html>this is not json"
        return 200, _completion(req.get("model", "?"), _content(action, verdict), len(text))


def _content(action: str, verdict: bool) -> str | None:
    obj = json.dumps({"explanation": "scripted verdict", "criteria_met": verdict})
    if action == "fence":
        return f"Here is my grading.\n```json\n{obj}\n```\nDone."
    if action == "malformed":
        return "I believe the response meets the criterion, mostly."
    if action == "stringbool":
        return json.dumps({"explanation": "scripted", "criteria_met": str(verdict).lower()})
    if action == "empty":
        return None
    return obj


def _completion(model: str, content: str | None, prompt_chars: int) -> bytes:
    completion_tokens = len(content or "") // 4
    prompt_tokens = prompt_chars // 4
    return json.dumps(
        {
            "id": "chatcmpl-scripted",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
    ).encode()


def _error(message: str, code: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": code, "param": None, "code": code}}).encode()


class _Connection(asyncio.Protocol):
    """HTTP/1.1 with keep-alive; one request at a time per connection (clients do not pipeline)."""

    def __init__(self, logic: ChatLogic):
        self.logic = logic
        self.buf = bytearray()
        self.busy = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self._next()

    def _next(self) -> None:
        if self.busy:
            return
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        lines = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        size = int(headers.get("content-length", "0"))
        if len(self.buf) < end + 4 + size:
            return
        body = bytes(self.buf[end + 4 : end + 4 + size])
        del self.buf[: end + 4 + size]
        self.busy = True
        asyncio.ensure_future(self._handle(method, path, headers, body))

    async def _handle(self, method, path, headers, body) -> None:
        try:
            status, payload = await self.logic.respond(method, path, headers, body)
        except Exception as exc:  # a bug in the script: answer 500 rather than hang the client
            status, payload = 500, _error(f"server bug: {exc!r}", "server_error")
        if self.transport is None or self.transport.is_closing():
            return  # the client gave up (timeout) and closed the connection
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: keep-alive\r\n\r\n"
        )
        self.transport.write(head.encode() + payload)
        self.busy = False
        self._next()


class ScriptedChatServer:
    """The server on 127.0.0.1 (ephemeral port) in a background thread with its own event loop."""

    def __init__(
        self, latency: float = 0.0, host: str = "127.0.0.1", port: int = 0, default_action: str = "ok"
    ):
        self.logic = ChatLogic(latency, default_action)
        self.host, self.port = host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self, timeout: float = 10.0) -> ScriptedChatServer:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                server = loop.run_until_complete(
                    loop.create_server(lambda: _Connection(self.logic), self.host, self.port)
                )
                self.port = server.sockets[0].getsockname()[1]
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:  # answers still pending end here, not as "Task was destroyed" in a later test
                server.close()
                pending = asyncio.all_tasks(loop)
                for task in pending:
                    task.cancel()
                if pending:  # gather() of nothing would look for this thread's (absent) loop
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(server.wait_closed())
                loop.close()

        self._thread = threading.Thread(target=run, name="judge-test-server", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError("the scripted judge server did not start")
        if failure:
            raise failure[0]
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)

    def __enter__(self) -> ScriptedChatServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def total(self) -> int:
        return self.logic.total


@contextlib.contextmanager
def spawn_server(latency: float = 0.0, timeout: float = 20.0):
    """Run the server in a subprocess (its own core); yields (base_url, stats_fn, reset_fn)."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--latency", str(latency)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = _readline(proc, timeout)
        if not line.startswith("PORT "):
            raise RuntimeError(f"the judge server subprocess did not start: {line!r}")
        root = f"http://127.0.0.1:{int(line.split()[1])}"

        def stats() -> dict:
            with urllib.request.urlopen(f"{root}/stats", timeout=10) as resp:
                return json.loads(resp.read())

        def reset() -> None:
            urllib.request.urlopen(urllib.request.Request(f"{root}/reset", data=b"{}"), timeout=10).close()

        yield f"{root}/v1", stats, reset
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _readline(proc: subprocess.Popen, timeout: float) -> str:
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return out[0].strip() if out else ""


async def _serve_until_stdin_closes(latency: float) -> None:
    loop = asyncio.get_running_loop()
    logic = ChatLogic(latency)
    server = await loop.create_server(lambda: _Connection(logic), "127.0.0.1", 0)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--latency", type=float, default=0.0)
    asyncio.run(_serve_until_stdin_closes(parser.parse_args().latency))


if __name__ == "__main__":
    main()
