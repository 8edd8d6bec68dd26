"""An OTLP/HTTP sink for the tracing benchmark: answers every POST (/v1/traces) with 200 and
an empty body and counts the bytes it got, so `bench/run --tracing` measures what exporting
spans costs the server, not a collector.

    python bench/otlp_sink.py --port 4318
"""

from __future__ import annotations

import argparse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Sink(BaseHTTPRequestHandler):
    received = 0

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        size = int(self.headers.get("content-length") or 0)
        self.rfile.read(size)
        Sink.received += size
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    ThreadingHTTPServer(("127.0.0.1", args.port), Sink).serve_forever()


if __name__ == "__main__":
    main()
