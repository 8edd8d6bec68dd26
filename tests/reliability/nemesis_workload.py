"""The workload of a nemesis run (nemesis.py): what each client sends, drawn from its
own seeded RNG, and how it retries.

A client sends its ops one after another. An idempotent request (an idempotency key, or
a workflow's run, idempotent by its key) is sent again with the same key after a
timeout, a dropped connection or a 5xx, until it is answered or the run gives up; a
request without a key (`add_once`) is sent again only when it cannot have been sent
(the connection was refused or never made): once it may have reached the server, its
outcome stays unknown. Every answer that the API does not document for a well-formed
request (a 4xx other than the op's own refusal, a 500) is an anomaly, reported by the
run under `answers`.
"""

from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional

import httpx

from tests.reliability.nemesis_checker import OK, REFUSED, UNKNOWN, Op

if TYPE_CHECKING:
    from tests.reliability.nemesis import Config, NemesisRun

# How often each kind of op is drawn.
MIX = {"add": 24, "add_once": 8, "add_send": 10, "transfer": 22, "chain": 10, "awakeable": 8,
       "workflow": 8, "saga": 10}


# Counters and accounts are new keys every EPOCH ops of a client (the clients go at about
# the same pace, so they share them): a long soak's `applied` lists and ledgers stay short.
EPOCH = 300


def op_schedule(config: Config, client: int) -> Iterator[Op]:
    """The ops of client `client`, endless; the same seed gives the same sequence."""
    rng = random.Random(f"{config.seed}/client/{client}")
    kinds, weights = list(config.mix), list(config.mix.values())
    for n in range(1_000_000):
        kind = rng.choices(kinds, weights)[0]
        op_id = f"{kind}-{client}-{n}"
        epoch = n // EPOCH
        if kind in ("add", "add_once"):
            args: dict[str, Any] = {"key": f"c{rng.randrange(config.counters)}-{epoch}", "n": rng.randint(1, 9)}
        elif kind == "add_send":
            args = {"key": f"c{rng.randrange(config.counters)}-{epoch}", "n": rng.randint(1, 9),
                    "delay_ms": rng.choice((0, 0, 200, 1000))}
        elif kind == "transfer":
            src, dst = rng.sample([f"a{i}-{epoch}" for i in range(config.accounts)], 2)
            args = {"src": src, "dst": dst, "amount": rng.randint(1, 60)}
        elif kind == "chain":
            args = {"hops": rng.randint(1, 4), "delay_ms": rng.choice((0, 50, 300, 800)),
                    "sleep_ms": rng.choice((0, 100, 700, 1500))}
        elif kind == "awakeable":
            args = {"resolve_after": rng.uniform(0.0, 1.0)}
        elif kind == "workflow":
            args = {"approve_after": rng.uniform(0.0, 1.5)}
        else:
            legs = rng.randint(1, 4)
            args = {"legs": legs, "fail_at": rng.choice([None, None, rng.randint(1, legs)])}
        yield Op(op_id, kind, args)


# ---- the history file the server writes ----------------------------------------------------


class LogTail:
    """Reads nemesis.log as it grows: the clients look up the awakeable ids published there."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._lock = threading.Lock()
        self.awakeables: dict[str, str] = {}  # op -> awakeable id

    def poll(self) -> None:
        with self._lock:
            if not self.path.exists():
                return
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
            end = data.rfind(b"\n") + 1  # a line is whole once its newline is there
            self._offset += end
            for raw in data[:end].decode().splitlines():
                parts = raw.split()
                if parts and parts[0] == "awk":
                    self.awakeables.setdefault(parts[1], parts[2])

    def append(self, *fields: str) -> None:
        """A line from the harness (while no server runs)."""
        with open(self.path, "a") as f:
            f.write(" ".join(fields) + "\n")


# ---- clients ----------------------------------------------------------------------------------


class GiveUp(Exception):
    """The run's deadline for the op passed."""


class Client(threading.Thread):
    """One client: sends its ops one after another and records what it was answered."""

    def __init__(self, run: "NemesisRun", index: int) -> None:
        super().__init__(name=f"nemesis-client-{index}", daemon=True)
        self.run_ = run
        self.index = index
        self.ops: list[Op] = []
        self.http = httpx.Client(timeout=httpx.Timeout(run.config.client_timeout, connect=1.0))
        self.error: Optional[BaseException] = None

    def run(self) -> None:
        try:
            for op in op_schedule(self.run_.config, self.index):
                if self.run_.stop_new.is_set():
                    break
                self.ops.append(op)
                try:
                    getattr(self, f"_{op.kind}")(op)
                except GiveUp:
                    pass
        except BaseException as exc:  # noqa: BLE001 - reported by the run
            self.error = exc
        finally:
            self.http.close()

    # -- one request, retried while its outcome is unknown (if `retry`)

    def request(self, op: Op, method: str, path: str, body: Any = None, *, key: Optional[str] = None,
                retry: bool = True, ok: tuple[int, ...] = (200, 202), refused: tuple[int, ...] = (),
                count: bool = True) -> tuple[str, Optional[httpx.Response]]:
        run = self.run_
        headers = {"content-type": "application/json"} if body is not None else {}
        if key is not None:
            headers["idempotency-key"] = key
        content = json.dumps(body).encode() if body is not None else b""
        delay = 0.05
        while True:
            if run.give_up.is_set():
                raise GiveUp()
            if count:
                op.attempts += 1
            port = run.server.port
            try:
                if not port:
                    raise httpx.ConnectError("no server is running")
                resp = self.http.request(method, f"http://127.0.0.1:{port}{path}", content=content, headers=headers)
            except (httpx.ConnectError, httpx.ConnectTimeout):
                pass  # nothing was sent: trying again is safe for any request
            except httpx.TransportError:
                if not retry:
                    return UNKNOWN, None
            else:
                if resp.status_code in ok:
                    return OK, resp
                if resp.status_code in refused:
                    return REFUSED, resp
                if resp.status_code < 500:
                    run.anomaly(f"{op.kind} {op.id}: {method} {path} answered {resp.status_code} {resp.text[:200]}")
                    return UNKNOWN, resp
                if resp.status_code != 503:
                    run.anomaly(f"{op.kind} {op.id}: {method} {path} answered {resp.status_code} {resp.text[:200]}")
                if not retry:  # 503: "the outcome is unknown"
                    return UNKNOWN, resp
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def _answer(self, op: Op, outcome: str, resp: Optional[httpx.Response]) -> None:
        op.outcome = outcome
        if resp is not None and outcome in (OK, REFUSED):
            op.result = resp.json()
            op.invocation_id = resp.headers.get("x-restate-id")
            if isinstance(op.result, dict) and "invocationId" in op.result:
                op.invocation_id = op.result["invocationId"]

    # -- the ops

    def _add(self, op: Op) -> None:
        a = op.args
        self._answer(op, *self.request(op, "POST", f"/NCounter/{a['key']}/add", {"op": op.id, "n": a["n"]},
                                       key=op.id))

    def _add_once(self, op: Op) -> None:
        a = op.args
        self._answer(op, *self.request(op, "POST", f"/NCounter/{a['key']}/add", {"op": op.id, "n": a["n"]},
                                       retry=False))

    def _add_send(self, op: Op) -> None:
        a = op.args
        delay = f"?delay={a['delay_ms']}ms" if a["delay_ms"] else ""
        self._answer(op, *self.request(op, "POST", f"/NCounter/{a['key']}/add/send{delay}",
                                       {"op": op.id, "n": a["n"]}, key=op.id, ok=(202,)))

    def _transfer(self, op: Op) -> None:
        outcome, resp = self.request(op, "POST", "/Bank/transfer", dict(op.args, op=op.id), key=op.id,
                                     ok=(200,), refused=(409,))
        if outcome == REFUSED and "insufficient funds" not in resp.text:  # type: ignore[union-attr]
            self.run_.anomaly(f"transfer {op.id} refused for another reason: {resp.text}")  # type: ignore[union-attr]
        self._answer(op, outcome, resp)

    def _chain(self, op: Op) -> None:
        self._answer(op, *self.request(op, "POST", "/Chains/start", dict(op.args, op=op.id), key=op.id, ok=(200,)))

    def _saga(self, op: Op) -> None:
        a = op.args
        self._answer(op, *self.request(op, "POST", "/Trips/book", {"op": op.id, "legs": a["legs"],
                                                                    "fail_at": a["fail_at"]},
                                       key=op.id, ok=(200,), refused=(409,)))

    def _awakeable(self, op: Op) -> None:
        self._answer(op, *self.request(op, "POST", "/Waiter/wait/send", {"op": op.id}, key=op.id, ok=(202,)))
        if op.outcome != OK:
            return
        time.sleep(op.args["resolve_after"])
        tail = self.run_.tail
        while op.id not in tail.awakeables:  # published by the handler's step, once it runs
            if self.run_.give_up.is_set():
                raise GiveUp()
            time.sleep(0.05)
            tail.poll()
        self.run_.resolve(self, op)
        self._attach(op, f"/restate/invocation/Waiter/wait/{op.id}/attach")

    def _workflow(self, op: Op) -> None:
        self._answer(op, *self.request(op, "POST", f"/Approval/{op.id}/run/send", {"op": op.id}, ok=(202,)))
        time.sleep(op.args["approve_after"])
        self.run_.approve(self, op)
        self._attach(op, f"/restate/workflow/Approval/{op.id}/attach")

    def _attach(self, op: Op, path: str) -> None:
        """Wait for the result (attach is idempotent: asked again after a timeout or a crash)."""
        outcome, resp = self.request(op, "GET", path, ok=(200,), count=False)
        if outcome == OK and resp is not None:
            op.attached = resp.json()
