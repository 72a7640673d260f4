"""A loopback OpenAI-compatible chat-completions server with scripted replies, for testing the rubric judge.

The script is chosen per request by a marker in the prompt text (`<<behaviour>>`), so concurrent requests from the
judge's thread pool stay deterministic. Every request is recorded (path, headers, JSON body) so tests can check
what was sent. Binds 127.0.0.1 on an ephemeral port; nothing leaves the machine.

Behaviours (marker -> reply):
  score:N        200, content "N"
  label:N        200, content "Score: N"
  json:N         200, content '{"score": N}'
  text:WORDS     200, content WORDS (e.g. "no number here")
  malformed      200, body that is not JSON
  nocontent      200, JSON without choices
  status:CODE    that HTTP status every time
  flaky:CODE:N   that status for the first N requests carrying this prompt, then content "80"
  sleep:S        sleeps S seconds (bounded by MAX_SLEEP_S) before answering "10"
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_SLEEP_S = 2.0
_MARKER = re.compile(r"<<([^<>]+)>>")


class StubServer:
    """Context manager: `with StubServer() as stub: stub.base_url ...`."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> StubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def count(self, marker: str) -> int:
        with self._lock:
            return self._seen[marker]

    def _record(self, entry: dict, marker: str) -> int:
        with self._lock:
            self.requests.append(entry)
            self._seen[marker] += 1
            return self._seen[marker]

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError:
                    body = None
                text = json.dumps(body) if body is not None else ""
                m = _MARKER.search(text)
                marker = m.group(1) if m else "score:0"
                n = stub._record({"path": self.path, "headers": dict(self.headers), "body": body}, marker)
                if self.path != "/v1/chat/completions":
                    return self._send(404, b'{"error": "not found"}')
                self._behave(marker, n)

            def _behave(self, marker: str, n: int) -> None:
                kind, _, arg = marker.partition(":")
                if kind == "score":
                    return self._content(arg)
                if kind == "label":
                    return self._content(f"Score: {arg}")
                if kind == "json":
                    return self._content(json.dumps({"score": float(arg)}))
                if kind == "text":
                    return self._content(arg)
                if kind == "malformed":
                    return self._send(200, b"{this is not json")
                if kind == "nocontent":
                    return self._send(200, b'{"id": "x", "choices": []}')
                if kind == "status":
                    return self._send(int(arg), b'{"error": {"message": "scripted failure"}}')
                if kind == "flaky":
                    code, times = arg.split(":")
                    if n <= int(times):
                        return self._send(int(code), b'{"error": {"message": "try again"}}')
                    return self._content("80")
                if kind == "sleep":
                    time.sleep(min(float(arg), MAX_SLEEP_S))
                    return self._content("10")
                return self._send(400, b'{"error": "unknown behaviour"}')

            def _content(self, content: str) -> None:
                payload = {"id": "stub", "object": "chat.completion",
                           "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                        "finish_reason": "stop"}]}
                self._send(200, json.dumps(payload).encode())

            def _send(self, code: int, data: bytes) -> None:
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    pass

        return Handler
