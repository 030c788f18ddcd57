#!/usr/bin/env python3
"""A webhook receiver for Herald's integration tests, on 127.0.0.1 (an ephemeral port).

usage: webhook_receiver.py DIR

Prints "listening 127.0.0.1:PORT" once it listens. At each request it reads
DIR/secrets.json ({"/path": "secret", ...}, written by the test once it has created the
endpoints) and verifies the Herald-Signature header (t=<unix>,v1=<hex HMAC-SHA256 of
"<t>.<body>">, timestamp within 300 s) with the secret of the request's path. Every
request is appended to DIR/requests.jsonl before it is answered:
{"path", "event_id", "type", "valid", "answer", "body", "at"} ("at": Unix time of the record).

A request whose body ends before its Content-Length (the sender was killed between the
head and the body) is recorded with answer "truncated" and not answered.

How a path answers:
  /ok      200
  /fail    500, always
  /flaky   500 to the first two requests of each event id, then 200
  /slow    the first request of each event id sleeps 3 s before its 200 (Herald's
           time-out is shorter: it gives up and retries), later ones 200 at once
"""
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

directory = sys.argv[1]
lock = threading.Lock()
seen = {}


def secrets():
    try:
        with open(os.path.join(directory, "secrets.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def verify(header, secret, body):
    fields = {}
    for part in (header or "").split(","):
        if "=" in part:
            k, v = part.split("=", 1)
            fields.setdefault(k.strip(), []).append(v.strip())
    try:
        t = int(fields.get("t", [""])[0])
    except ValueError:
        return False
    if abs(time.time() - t) > 300 or secret is None:
        return False
    expected = hmac.new(secret.encode(), str(t).encode() + b"." + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, v) for v in fields.get("v1", []))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        path = self.path.split("?")[0]
        event_id = self.headers.get("Herald-Event-Id")
        truncated = len(body) < length
        with lock:
            n = seen.get((path, event_id), 0)
            if not truncated:
                seen[(path, event_id)] = n + 1
        if truncated:
            answer = "truncated"
        elif path == "/fail":
            answer = 500
        elif path == "/flaky":
            answer = 500 if n < 2 else 200
        elif path == "/slow":
            answer = "late" if n == 0 else 200
        else:
            answer = 200
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        record = {
            "path": path, "event_id": event_id, "type": self.headers.get("Herald-Event-Type"),
            "valid": verify(self.headers.get("Herald-Signature"), secrets().get(path), body),
            "answer": answer, "body": parsed, "at": time.time(),
        }
        with lock:
            with open(os.path.join(directory, "requests.jsonl"), "a") as f:
                f.write(json.dumps(record) + "\n")
        if truncated:
            self.close_connection = True
            return
        if answer == "late":
            time.sleep(3)
            answer = 200
        reply = b"ok" if answer == 200 else b"failing on purpose"
        try:
            self.send_response(answer)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)
        except OSError:
            pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print("listening 127.0.0.1:%d" % server.server_address[1], flush=True)
server.serve_forever()
