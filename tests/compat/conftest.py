"""Fixtures for the OpenAI SDK compatibility suite: the real `assisters`
binary on ephemeral ports, and a small real upstream written with the
standard library (OpenAI's wire format, JSON and SSE)."""

import json
import os
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("GATEWAY_BIN", str(ROOT / "target" / "debug" / "assisters"))


class Upstream(BaseHTTPRequestHandler):
    """Answers model `mock` with a fixed completion; streams when asked."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _json(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/v1/models":
            self._json(200, {"object": "list", "data": [{"id": "mock", "object": "model", "created": 0, "owned_by": "mock"}]})
        else:
            self._json(404, {"error": {"message": "no", "type": "invalid_request_error", "param": None, "code": None}})

    def do_POST(self):
        req = json.loads(self.rfile.read(int(self.headers["content-length"])))
        usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
        if not req.get("stream"):
            self._json(200, {
                "id": "chatcmpl-up", "object": "chat.completion", "created": 1, "model": req["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "from upstream"}, "finish_reason": "stop"}],
                "usage": usage,
            })
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()

        def send(data):
            payload = f"data: {data}\n\n".encode()
            self.wfile.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
            self.wfile.flush()

        for piece in ["from", " upstream"]:
            send(json.dumps({"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 1, "model": req["model"],
                             "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}))
        if (req.get("stream_options") or {}).get("include_usage"):
            send(json.dumps({"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 1, "model": req["model"],
                             "choices": [], "usage": usage}))
        send("[DONE]")
        self.wfile.write(b"0\r\n\r\n")


@pytest.fixture(scope="session")
def upstream():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


@pytest.fixture(scope="session")
def gateway(upstream):
    with tempfile.TemporaryDirectory() as data_dir:
        cfg = Path(data_dir) / "config.toml"
        cfg.write_text(
            'listen = "127.0.0.1:0"\nadmin_listen = "127.0.0.1:0"\n'
            f'[[upstreams]]\nname = "py"\nbase_url = "{upstream}"\nmodels = ["mock"]\n'
        )
        proc = subprocess.Popen([BIN, "--data-dir", data_dir, "serve", "--config", str(cfg)],
                                stdout=subprocess.DEVNULL)
        runtime = Path(data_dir) / "runtime.json"
        deadline = time.time() + 30
        while not runtime.exists():
            assert proc.poll() is None, "assisters exited at start"
            assert time.time() < deadline, "assisters did not start"
            time.sleep(0.05)
        time.sleep(0.05)
        info = json.loads(runtime.read_text())
        out = subprocess.run([BIN, "--data-dir", data_dir, "keys", "create", "--name", "sdk", "--tier", "startup", "--json"],
                             check=True, capture_output=True, text=True).stdout
        key = json.loads(out)["key"]
        yield {"base_url": f"http://{info['listen']}/v1", "key": key, "data_dir": data_dir}
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
