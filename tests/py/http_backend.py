#!/usr/bin/env python3
"""The HTTP backend of hoop's `http` connection tests: a standard-library
HTTP/1.1 server (keep-alive, threads) on 127.0.0.1, a free port.

    http_backend.py [--tls CERT KEY]

Prints `listening PORT` once it accepts connections. Every request is
recorded (method, target, headers, body size and SHA-256); the tests read
the records directly from the server with `GET /__requests`, never through
hoop, so what the backend received can be checked without sending any
injected credential back to the caller.

Endpoints:
  /echo            the request as JSON, `authorization` and `x-api-key` left
                   out (their presence is told), any method
  /download?n=N    N bytes of the pattern 0,1,...,255,0,1,... (chunked)
  /sse             server-sent events: one, then waits for /__release, then one more
  /json            JSON with e-mail addresses and passwords
  /ndjson          JSON lines with e-mail addresses, streamed
  /text            text/plain with an e-mail address
  /image           image/png bytes
  /bad-json        application/json that does not parse
  /gzip-json       gzip-compressed JSON, whatever the request accepts
  /ws              a WebSocket (RFC 6455) echo of text and binary frames
  /__requests      the records so far (JSON list)
  /__release       lets a waiting /sse finish
"""

import base64
import gzip
import hashlib
import http.server
import json
import ssl
import struct
import sys
import threading
import urllib.parse

RECORDS = []
LOCK = threading.Lock()
RELEASE = threading.Event()
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# Credentials the tests inject: /echo says whether they came, never what.
SECRET_HEADERS = ("authorization", "x-api-key")


def pattern(n):
    block = bytes(range(256)) * 256  # 64 KiB
    out = []
    while n > 0:
        take = min(n, len(block))
        out.append(block[:take])
        n -= take
    return out


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hoop-test-backend"

    def log_message(self, fmt, *args):  # quiet
        pass

    # ---- bodies -------------------------------------------------------

    def read_body(self):
        """Reads a Content-Length or chunked request body, hashing it."""
        h = hashlib.sha256()
        n = 0
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                left = size
                while left:
                    chunk = self.rfile.read(min(left, 1 << 16))
                    if not chunk:
                        raise ConnectionError("body cut short")
                    h.update(chunk)
                    left -= len(chunk)
                    n += len(chunk)
                self.rfile.readline()
        else:
            left = int(self.headers.get("Content-Length", "0") or 0)
            while left:
                chunk = self.rfile.read(min(left, 1 << 16))
                if not chunk:
                    raise ConnectionError("body cut short")
                h.update(chunk)
                left -= len(chunk)
                n += len(chunk)
        return n, h.hexdigest()

    def send_body(self, status, ctype, body, extra=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, obj, status=200):
        self.send_body(status, "application/json", json.dumps(obj).encode())

    def start_chunked(self, ctype):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def end_chunks(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    # ---- dispatch -----------------------------------------------------

    def handle_any(self):
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        if path.startswith("/__"):
            self.read_body()
            if path == "/__requests":
                with LOCK:
                    self.send_json(RECORDS)
            elif path == "/__release":
                RELEASE.set()
                self.send_json({"released": True})
            else:
                self.send_json({"error": "unknown"}, 404)
            return
        n, sha = self.read_body()
        record = {
            "method": self.command,
            "target": self.path,
            "headers": [[k.lower(), v] for k, v in self.headers.items()],
            "body_len": n,
            "body_sha256": sha,
        }
        with LOCK:
            RECORDS.append(record)
        # A base path ("/api") in front of the endpoint names is allowed.
        name = path.rsplit("/", 1)[-1] if path != "/" else ""
        query = urllib.parse.parse_qs(url.query)
        if name == "echo":
            self.send_json(
                {
                    "method": self.command,
                    "target": self.path,
                    "headers": {
                        k: v for k, v in record["headers"] if k not in SECRET_HEADERS
                    },
                    "present": sorted(
                        k for k, _ in record["headers"] if k in SECRET_HEADERS
                    ),
                    "body_len": n,
                    "body_sha256": sha,
                }
            )
        elif name == "download":
            total = int(query.get("n", ["0"])[0])
            self.start_chunked("application/octet-stream")
            for part in pattern(total):
                self.chunk(part)
            self.end_chunks()
        elif name == "sse":
            RELEASE.clear()
            self.start_chunked("text/event-stream")
            self.chunk(b"data: first\n\n")
            RELEASE.wait(30)
            self.chunk(b"data: second\n\n")
            self.end_chunks()
        elif name == "json":
            self.send_json(
                {
                    "users": [
                        {"id": 1, "name": "Alice", "email": "alice@example.com",
                         "db_password": "hunter2"},
                        {"id": 2, "name": "Bob", "email": "bob@example.org",
                         "db_password": "correct horse"},
                    ],
                    "note": "write to carol@example.net",
                    "count": 2,
                }
            )
        elif name == "ndjson":
            self.start_chunked("application/x-ndjson")
            for i, who in enumerate(["dave@example.com", "erin@example.com"]):
                self.chunk(json.dumps({"seq": i, "email": who}).encode() + b"\n")
            self.end_chunks()
        elif name == "text":
            self.send_body(200, "text/plain", b"contact alice@example.com\n")
        elif name == "image":
            self.send_body(200, "image/png", b"\x89PNG\r\n\x1a\nalice@example.com")
        elif name == "bad-json":
            self.send_body(200, "application/json", b'{"email": "alice@example.com"')
        elif name == "gzip-json":
            body = gzip.compress(b'{"email": "alice@example.com"}')
            self.send_body(200, "application/json", body, [("Content-Encoding", "gzip")])
        elif name == "ws":
            self.websocket()
        else:
            self.send_json({"error": "not found", "path": path}, 404)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = handle_any

    def do_HEAD(self):
        self.handle_any()

    # ---- WebSocket ----------------------------------------------------

    def websocket(self):
        key = self.headers.get("Sec-WebSocket-Key")
        if self.headers.get("Upgrade", "").lower() != "websocket" or not key:
            self.send_json({"error": "not a websocket request"}, 400)
            return
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest())
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept.decode())
        self.end_headers()
        self.wfile.flush()
        while True:
            head = self.rfile.read(2)
            if len(head) < 2:
                break
            opcode = head[0] & 0x0F
            masked = head[1] & 0x80
            length = head[1] & 0x7F
            if length == 126:
                length = struct.unpack("!H", self.rfile.read(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", self.rfile.read(8))[0]
            mask = self.rfile.read(4) if masked else b"\0\0\0\0"
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(length)))
            if opcode == 0x8:  # close: answer and stop
                self.ws_send(0x8, data[:2])
                break
            if opcode in (0x1, 0x2):
                self.ws_send(opcode, data)
        self.close_connection = True

    def ws_send(self, opcode, data):
        n = len(data)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
        self.wfile.write(head + data)
        self.wfile.flush()


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if len(sys.argv) == 4 and sys.argv[1] == "--tls":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[2], sys.argv[3])
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print("listening", server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
