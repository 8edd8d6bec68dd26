"""HTTP floor: a raw-ASGI hello world served exactly like Stead's ingress.

The uvicorn settings mirror runtime/server.py (httptools, uvloop via uvloop.run with
loop="none", one worker, no lifespan, no access log, no Server/Date headers), so the
difference between this and W1 is what Stead itself costs, not the HTTP stack.

    python bench/hello_asgi.py --port 8099
"""

from __future__ import annotations

import argparse

BODY = b'{"hello":"world"}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    message = await receive()  # drain the request body, as the ingress does
    while message.get("more_body"):
        message = await receive()
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def main() -> None:
    import uvicorn
    import uvloop

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    args = parser.parse_args()
    config = uvicorn.Config(
        app, host=args.host, port=args.port, loop="none", http="httptools",
        lifespan="off", access_log=False, log_level="warning", server_header=False,
        date_header=False, proxy_headers=False,
    )
    uvloop.run(uvicorn.Server(config).serve())


if __name__ == "__main__":
    main()
