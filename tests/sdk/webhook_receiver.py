"""A webhook receiver for Relay's tests (tests/tests/webhooks.rs).

Verifies every delivery with the Standard Webhooks library (`standardwebhooks.Webhook(secret)
.verify(body, headers)`) and reports each one as a JSON line on stdout. Protocol:
  1. prints {"port": N} once it listens on 127.0.0.1;
  2. reads one JSON line on stdin: {"secret": "whsec_…", "failFirst": 3, "failStatus": 500,
     "hangFirst": 0, "delayMs": 0};
  3. prints {"ready": true}; then one line per request received:
     {"attempt", "answered", "verified", "error", "id", "timestamp", "userAgent", "contentType",
      "payload", "body"};
  4. exits when stdin closes.
The first `failFirst` requests are answered `failStatus` (still verified and reported); the
rest 204. The first `hangFirst` requests are answered only after 15 s (past Relay's timeout);
every request after `delayMs`. `inflight` counts the requests being answered when one arrives,
itself included.
"""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook

state = {"secret": None, "fail_first": 0, "fail_status": 500, "hang_first": 0, "delay_ms": 0, "seen": 0, "inflight": 0}
lock = threading.Lock()


def report(obj):
    with lock:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        headers = {k.lower(): v for k, v in self.headers.items()}
        with lock:
            state["seen"] += 1
            state["inflight"] += 1
            attempt = state["seen"]
            inflight = state["inflight"]
            fail = attempt <= state["fail_first"]
            hang = attempt <= state["hang_first"]
        verified, error, payload = False, None, None
        try:
            payload = Webhook(state["secret"]).verify(body, headers)
            verified = True
        except Exception as e:  # noqa: BLE001 - every failure is reported to the test
            error = f"{type(e).__name__}: {e}"
        answered = state["fail_status"] if fail else 204
        if hang:
            time.sleep(15)
        time.sleep(state["delay_ms"] / 1000)
        # Done before answering: Relay's next attempt can only start after the answer.
        with lock:
            state["inflight"] -= 1
        try:
            self.send_response(answered)
            self.send_header("content-length", "0")
            self.end_headers()
        except OSError:
            answered = None  # the sender gave up waiting
        report(
            {
                "attempt": attempt,
                "inflight": inflight,
                "answered": answered,
                "verified": verified,
                "error": error,
                "id": headers.get("webhook-id"),
                "timestamp": headers.get("webhook-timestamp"),
                "userAgent": headers.get("user-agent"),
                "contentType": headers.get("content-type"),
                "payload": payload,
                "body": body.decode("utf-8", "replace"),
            }
        )

    def log_message(self, *args):
        pass


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    report({"port": server.server_address[1]})
    config = json.loads(sys.stdin.readline())
    state["secret"] = config["secret"]
    state["fail_first"] = int(config.get("failFirst", 0))
    state["fail_status"] = int(config.get("failStatus", 500))
    state["hang_first"] = int(config.get("hangFirst", 0))
    state["delay_ms"] = int(config.get("delayMs", 0))
    report({"ready": True})
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    main()
