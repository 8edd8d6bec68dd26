"""Ingress edge cases over real HTTP against a real `stead serve`: truncated and
oversized bodies, path grammar and decoding, methods, awakeables already completed,
health, workflow runs already invoked, and handlers private to the ingress.

Bad input gets a 4xx with a JSON body {"code", "message"}, changes nothing, and the
server keeps serving.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
import urllib.error
import urllib.request

import httpx

from tests.apps.testapp import application
from tests.conftest import wait_for_lines


def _raw(server, data: bytes, *, pause: float = 0.0, shut: bool = True) -> bytes:  # type: ignore[no-untyped-def]
    """Send `data` on a fresh connection, after `pause` s shut the write side (if `shut`),
    and return whatever the server answers before it closes."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(data)
        if pause:
            time.sleep(pause)
        if shut:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def _error(resp: httpx.Response, status: int) -> str:
    assert resp.status_code == status, (resp.status_code, resp.text)
    body = resp.json()
    assert body["code"] == status and isinstance(body["message"], str) and body["message"]
    return body["message"]


def _last(server, key: str) -> object:  # type: ignore[no-untyped-def]
    """What Mailbox/{key} stored last (None: nothing; the ingress encodes None as an empty body)."""
    resp = server.post(f"/Mailbox/{key}/last")
    assert resp.status_code == 200, resp.text
    return resp.json() if resp.content else None


def _request(method: str, url: str) -> httpx.Response:
    return httpx.request(method, url, timeout=30.0)


# ---- 1. a client that goes away before its body is complete ----------------------------


def _truncated(path: str, declared: int, sent: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            f"content-length: {declared}\r\n\r\n").encode() + sent


def test_truncated_body_then_close_runs_nothing(server, effects_dir) -> None:
    answer = _raw(server, _truncated("/Mailbox/t1/put", 4, b"10"))
    assert answer == b""  # nobody to answer
    time.sleep(0.3)
    assert _last(server, "t1") is None
    assert not (effects_dir / "mailbox").exists()
    assert server.post("/Mailbox/t1/put", 7).json() == 7  # still serving


def test_body_cut_mid_way_runs_nothing(server, effects_dir) -> None:
    # The first bytes reach the handler's request before the client goes away: a body
    # "1000" cut after "10" must not run as 10.
    answer = _raw(server, _truncated("/Mailbox/t2/put", 4, b"10"), pause=0.3)
    assert answer == b""
    time.sleep(0.3)
    assert _last(server, "t2") is None
    assert not (effects_dir / "mailbox").exists()


def test_chunked_body_cut_mid_way_runs_nothing(server, effects_dir) -> None:
    head = (b"POST /Mailbox/t3/put HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            b"transfer-encoding: chunked\r\n\r\n2\r\n10\r\n")
    assert _raw(server, head, pause=0.3) == b""
    time.sleep(0.3)
    assert _last(server, "t3") is None
    assert not (effects_dir / "mailbox").exists()


# ---- 2. a body over --max-body ----------------------------------------------------------


def test_oversized_body_is_413_for_a_client_that_writes_it_all_first(make_server) -> None:
    server = make_server(extra_args=["--max-body", "1KiB"]).start()
    # Past a few MiB the server closing with the body still coming resets the connection
    # before urllib reads the answer, unless the server reads that body first.
    for size in (4096, 512 * 1024, 4 * 1024 * 1024, 7 * 1024 * 1024):
        body = b"[" + b"1," * (size // 2) + b"1]"
        req = urllib.request.Request(f"{server.url}/Mailbox/big/put", data=body, method="POST",
                                     headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raise AssertionError(f"accepted: {resp.status}")
        except urllib.error.HTTPError as exc:
            with contextlib.closing(exc):
                assert exc.code == 413
                assert exc.headers["connection"] == "close"
                answer = json.loads(exc.read())
        assert answer["code"] == 413 and "1024" in answer["message"]
    # A client that waits for `100 Continue` is answered at once, without being asked for its body.
    answer = _raw(server, b"POST /Mailbox/big/put HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 5000\r\n"
                          b"expect: 100-continue\r\n\r\n", shut=False)
    assert answer.startswith(b"HTTP/1.1 413 ") and b"100 Continue" not in answer
    assert _last(server, "big") is None  # nothing ran
    assert server.post("/Mailbox/big/put", 1).json() == 1


def test_oversized_chunked_body_is_413(make_server) -> None:
    server = make_server(extra_args=["--max-body", "1KiB"]).start()

    def chunks():  # type: ignore[no-untyped-def]
        yield b"["
        for _ in range(64):
            yield b"1," * 512
        yield b"1]"

    resp = httpx.post(f"{server.url}/Mailbox/big/put", content=chunks(),
                      headers={"content-type": "application/json"}, timeout=30)
    _error(resp, 413)
    assert resp.headers["connection"] == "close"
    assert _last(server, "big") is None
    assert server.post("/Mailbox/big/put", 2).json() == 2


# ---- 3. path segments that are not UTF-8 after percent-decoding --------------------------


def test_key_or_handler_not_utf8_is_400(server, effects_dir) -> None:
    for path in ("/Mailbox/%FF/put", "/Mailbox/%FE/put", "/Mailbox/a%C3/put", "/Mailbox/k/p%FFt",
                 "/Shop/p%FFng"):
        message = _error(httpx.post(f"{server.url}{path}", content=b"1", timeout=30), 400)
        assert "UTF-8" in message
    assert "UTF-8" in _error(server.get("/restate/invocation/Mailbox/%FF/put/x/output"), 400)
    assert not (effects_dir / "mailbox").exists()
    # A key that is valid UTF-8 once decoded is that key.
    assert httpx.post(f"{server.url}/Mailbox/caf%C3%A9%2F1/put", content=b"3", timeout=30).json() == 3
    assert server.post("/Mailbox/caf%C3%A9%2F1/last").json() == 3
    assert server.post("/Mailbox/café%2F1/last").json() == 3


# ---- 4. an object handler named `send` ---------------------------------------------------


def test_object_handler_named_send(server, effects_dir) -> None:
    assert server.post("/Mailbox/s/send", 5).json() == "sent 5"
    assert server.post("/Mailbox/s/last").json() == 5
    sent = server.post("/Mailbox/s/send/send", 6)
    assert sent.status_code == 202 and sent.json()["status"] == "Accepted"
    assert server.get(f"/restate/invocation/{sent.json()['invocationId']}/attach").json() == "sent 6"
    assert server.post("/Mailbox/s/last").json() == 6
    assert wait_for_lines(effects_dir / "mailbox", 2) == ["s send 5", "s send 6"]
    # A service's /send form is unchanged.
    assert server.post("/Shop/ping/send").status_code == 202


# ---- 5. methods and path shapes -----------------------------------------------------------


def test_get_invokes_a_handler_and_other_methods_are_405(server) -> None:
    assert server.get("/Shop/ping").json() == "pong"
    assert server.post("/Mailbox/g/put", 4).json() == 4
    assert server.get("/Mailbox/g/last").json() == 4
    assert server.get("/Shop/ping/send").status_code == 202
    for method in ("PUT", "DELETE", "PATCH"):
        _error(_request(method, f"{server.url}/Shop/ping"), 405)
        _error(_request(method, f"{server.url}/Mailbox/g/put"), 405)
    assert server.get("/Mailbox/g/last").json() == 4


def test_wrong_path_shapes_are_400_naming_the_shape(server, effects_dir) -> None:
    for path in ("/Mailbox/put", "/Mailbox/k/put/extra/more", "/Mailbox/k/put/notsend", "/Mailbox/k/put/",
                 "/Shop/ping/x", "/Shop/ping/send/more", "/Shop"):
        message = _error(server.post(path, 1), 400)
        assert "/{key}/{handler}" in message or "/{handler}" in message
    assert "/{key}/{handler}" in _error(server.post("/Mailbox/put", 1), 400)
    assert "/Shop/{handler}" in _error(server.post("/Shop/ping/x"), 400)
    assert "not found" in _error(server.post("/Nope/ping"), 404)
    assert "not found" in _error(server.post("/Shop/nope"), 404)
    assert "not found" in _error(server.post("/Mailbox/k/nope", 1), 404)
    assert not (effects_dir / "mailbox").exists()
    assert server.post("/Shop/ping").json() == "pong"


# ---- 6. awakeables: malformed ids, already completed ----------------------------------------


def _awakeable(flow, effects_dir) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    before = len(wait_for_lines(effects_dir / "awakeables", 0, timeout=0))
    inv = flow.post("/Waiter/wait/send").json()["invocationId"]
    (awk,) = wait_for_lines(effects_dir / "awakeables", before + 1)[before:]
    return inv, awk


def test_malformed_awakeable_id_is_400(flow) -> None:
    for awk in ("nonsense", "sign_1", "sign_1%21%21", "sign_1Zm9vLzE"):
        for verb in ("resolve", "reject"):
            assert "awakeable" in _error(flow.post(f"/restate/awakeables/{awk}/{verb}", 1), 400)


def test_completing_a_completed_awakeable_is_accepted_and_changes_nothing(flow, effects_dir) -> None:
    inv, awk = _awakeable(flow, effects_dir)
    assert flow.post(f"/restate/awakeables/{awk}/resolve", "first").status_code == 202
    assert flow.get(f"/restate/invocation/{inv}/attach").json() == "first"
    again = flow.post(f"/restate/awakeables/{awk}/resolve", "second")
    assert again.status_code == 202 and again.content == b""
    rejected = httpx.post(f"{flow.url}/restate/awakeables/{awk}/reject", content=b"no", timeout=30,
                          headers={"content-type": "text/plain"})
    assert rejected.status_code == 202
    assert flow.get(f"/restate/invocation/{inv}/output").json() == "first"
    # Invalid JSON is still refused, completed or not.
    bad = httpx.post(f"{flow.url}/restate/awakeables/{awk}/resolve", content=b"{", timeout=30,
                     headers={"content-type": "application/json"})
    _error(bad, 400)


# ---- 7. health ------------------------------------------------------------------------------


def test_health_lists_the_services(server) -> None:
    resp = server.get("/restate/health")
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert body["status"] == "ok"
    assert sorted(body["services"]) == sorted(application.services)
    assert {"Cart", "Shop", "Mailbox", "Hidden"} <= set(body["services"])  # private ones too, as Restate
    _error(httpx.post(f"{server.url}/restate/health", timeout=30), 405)


# ---- 8. workflow runs already invoked ---------------------------------------------------------

ALREADY_INVOKED = {"code": 409, "message": "the workflow method was already invoked"}


def test_calling_a_workflow_run_again_is_409(flow, effects_dir) -> None:
    first = flow.post("/Signup/wa/run/send", "wa@example.com")
    assert first.status_code == 202
    inv = first.json()["invocationId"]
    wait_for_lines(effects_dir / "emails", 1)
    running = flow.post("/Signup/wa/run", "other@example.com")  # still waiting for its promise
    assert running.status_code == 409 and running.json() == ALREADY_INVOKED
    flow.post("/Signup/wa/click", "k")
    assert flow.get("/restate/workflow/Signup/wa/attach").json() == "verified wa@example.com with k"
    done = flow.post("/Signup/wa/run", "other@example.com")
    assert done.status_code == 409 and done.json() == ALREADY_INVOKED
    by_get = httpx.request("GET", f"{flow.url}/Signup/wa/run", content=b'"x"', timeout=30)
    assert by_get.status_code == 409 and by_get.json() == ALREADY_INVOKED
    again = flow.post("/Signup/wa/run/send", "other@example.com")
    assert again.status_code == 202
    assert again.json() == {"invocationId": inv, "status": "PreviouslyAccepted"}
    assert flow.get("/restate/workflow/Signup/wa/output").json() == "verified wa@example.com with k"
    assert wait_for_lines(effects_dir / "emails", 1) == ["wa wa@example.com"]


def test_idempotency_key_on_a_workflow_run_is_400(flow, effects_dir) -> None:
    key = {"idempotency-key": "once"}
    for path in ("/Signup/wi/run", "/Signup/wi/run/send"):
        assert "idempotency" in _error(flow.post(path, "wi@example.com", headers=key), 400)
    assert flow.get("/restate/workflow/Signup/wi/output").status_code == 404  # nothing started
    assert not (effects_dir / "emails").exists()
    assert flow.post("/Signup/wi/status", headers=key).status_code == 200  # shared handlers take one


# ---- 9. handlers private to the ingress -------------------------------------------------------


def test_private_services_and_handlers_are_400_from_the_ingress(server) -> None:
    for path in ("/Hidden/secret", "/Hidden/secret/send", "/Gatekeeper/inner", "/Gatekeeper/inner/send"):
        assert _error(server.post(path, "x"), 400) == "the invoked service is not public"
    assert server.post("/Gatekeeper/outer", "x").json() == ["secret for x", "inner for x"]
