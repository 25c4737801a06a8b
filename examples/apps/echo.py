"""A tiny HTTP service for the demo and the tests: it says who it is and what it received.

GET /anything            -> 200 JSON {service, pod, path, method, headers, client_cert}
Every answer carries ``x-served-by: <--name>`` and ``x-served-by-pod: <hostname>`` (in Kubernetes the pod's name, so
a caller can tell the replicas of one Deployment apart).
header x-echo-set-header: name=value -> the answer carries that response header (tests of what the mesh keeps)
GET /healthz             -> 200, or 503 after POST /admin-toggle-health (used to show active health checks)
--fail-every N           -> every Nth request answers 503 (a flaky instance)
--delay-ms N             -> answer after N ms (header x-echo-delay-ms: N does the same for one request)
GET /echo-requests       -> 200 JSON {paths: the last 200 paths this instance served, oldest first} (not counted)
--upstream URL           -> GET /call/<path> forwards to URL/<path> and wraps the answer
Standard library only, so it runs anywhere the mesh does.
"""

from __future__ import annotations

import argparse
import collections
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class State:
    def __init__(self, args: argparse.Namespace) -> None:
        self.name = args.name
        self.pod = socket.gethostname()
        self.fail_every = args.fail_every
        self.delay_ms = args.delay_ms
        self.upstream = args.upstream
        self.healthy = True
        self.count = 0
        self.seen: collections.deque[str] = collections.deque(maxlen=200)
        self.lock = threading.Lock()


def make_handler(state: State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def _send(self, status: int, body: dict[str, object]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.send_header("x-served-by", state.name)
            self.send_header("x-served-by-pod", state.pod)
            name, sep, value = (self.headers.get("x-echo-set-header") or "").partition("=")
            if sep and name.strip():
                self.send_header(name.strip(), value.strip())
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _handle(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length:
                self.rfile.read(length)
            if self.path == "/healthz":
                self._send(200 if state.healthy else 503, {"service": state.name, "healthy": state.healthy})
                return
            if self.path == "/admin-toggle-health":
                state.healthy = not state.healthy
                self._send(200, {"service": state.name, "healthy": state.healthy})
                return
            if self.path == "/echo-requests":
                with state.lock:
                    seen = list(state.seen)
                self._send(200, {"service": state.name, "paths": seen})
                return
            with state.lock:
                state.count += 1
                n = state.count
                state.seen.append(self.path)
            delay_ms = state.delay_ms
            if (asked := self.headers.get("x-echo-delay-ms") or "").isdigit():
                delay_ms = min(int(asked), 30_000)
            if delay_ms:
                time.sleep(delay_ms / 1000)
            if state.fail_every and n % state.fail_every == 0:
                self._send(503, {"service": state.name, "error": "flaky by design", "request": n})
                return
            if state.upstream and self.path.startswith("/call/"):
                self._call_upstream(self.path[len("/call") :])
                return
            self._send(
                200,
                {
                    "service": state.name,
                    "pod": state.pod,
                    "path": self.path,
                    "method": self.command,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "client_cert": self.headers.get("x-forwarded-client-cert", ""),
                },
            )

        def _call_upstream(self, path: str) -> None:
            # Propagate the trace context (W3C) and request id, as any traced app must, so hops join into one trace.
            passed = ("x-request-id", "traceparent", "tracestate")
            req = urllib.request.Request(
                state.upstream + path, headers={h: v for h in passed if (v := self.headers.get(h))}
            )
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    self._send(
                        200, {"service": state.name, "upstream_status": resp.status, "upstream": json.load(resp)}
                    )
            except urllib.error.HTTPError as e:
                self._send(502, {"service": state.name, "upstream_status": e.code})
            except OSError as e:
                self._send(502, {"service": state.name, "upstream_error": str(e)})

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _handle

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--fail-every", type=int, default=0)
    parser.add_argument("--delay-ms", type=int, default=0)
    parser.add_argument("--upstream", default="")
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.address, args.port), make_handler(State(args)))
    server.daemon_threads = True
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
