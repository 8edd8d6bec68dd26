"""The model that the generated programs of tests/reliability/model_app.py are checked
against: what a program must produce, computed in memory with no runtime at all.

It follows Restate's semantics as Stead documents them:

- an exclusive handler owns its key: it reads what the key's earlier invocations left
  and its own changes at once; the invocations of one key run one at a time in the
  order they were enqueued;
- a step returns its value however often its body failed retryably before; a step that
  fails terminally, or exhausts its attempts, fails the invocation with that failure;
- a TerminalError ends the invocation with its code and message, and the state changes
  it made before are kept (they are journaled, and committed with the failure);
- a retryable failure of the handler itself changes nothing that can be seen: the
  invocation is retried and replays its journal;
- a call returns the callee's output, or raises the callee's terminal failure (code and
  message) in the caller; a send runs its callee on its own, and its failure reaches
  nobody;
- an awakeable returns the value it is resolved with, or raises TerminalError(message,
  500) when rejected.

A sent invocation is modelled as run to its end at the send: it runs later in reality,
but nothing the sender does afterwards can observe it, except a later call to the same
key, which queues behind it (per-key FIFO, and each key of a program tree is only ever
enqueued to by the one invocation of its parent node, in program order). That is why
test_model.py gives every node keys of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Outcome:
    """How an invocation ends: its output, or its terminal failure (code, message)."""

    output: Any = None
    failure: tuple[int, str] | None = None


class Terminal(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message


@dataclass
class Model:
    """State per object key (name -> JSON value) and the outcome per program node (by
    its path). `run` simulates one invocation of a program."""

    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    outcomes: dict[str, Outcome] = field(default_factory=dict)

    def run(self, prog: dict[str, Any], key: str | None) -> Outcome:
        """Run `prog` on the object key `key` (None: on the service)."""
        try:
            outcome = Outcome(output={"trace": self._ops(prog, key)})
        except Terminal as exc:
            outcome = Outcome(failure=(exc.code, exc.message))
        self.outcomes[prog["path"]] = outcome
        return outcome

    def _ops(self, prog: dict[str, Any], key: str | None) -> list[Any]:
        state = self.states.setdefault(key, {}) if key is not None else None
        trace: list[Any] = []
        for i, op in enumerate(prog["ops"]):
            kind = op["op"]
            if kind in ("get", "keys", "set", "clear", "clear_all"):
                assert state is not None, f"{prog['path']}: state op {kind} in a service"
            if kind == "get":
                trace.append(state.get(op["name"]))  # type: ignore[union-attr]
            elif kind == "keys":
                trace.append(sorted(state))  # type: ignore[arg-type]
            elif kind == "set":
                state[op["name"]] = op["value"]  # type: ignore[index]
            elif kind == "clear":
                state.pop(op["name"], None)  # type: ignore[union-attr]
            elif kind == "clear_all":
                state.clear()  # type: ignore[union-attr]
            elif kind == "step":
                mode = op.get("mode", "ok")
                if mode == "terminal":
                    raise Terminal(op["code"], op["message"])
                if mode == "exhaust":
                    raise Terminal(500, f"run 's{i}' failed after {op['attempts']} attempt(s): "
                                        f"RuntimeError: {op['message']}")
                trace.append(op.get("value"))
            elif kind == "sleep" or kind == "fail":
                pass
            elif kind == "send":
                self.run(op["prog"], op["key"] if op["target"] == "obj" else None)
            elif kind == "call":
                callee = self.run(op["prog"], op["key"] if op["target"] == "obj" else None)
                if callee.failure is None:
                    trace.append({"ret": callee.output["trace"]})
                elif op.get("catch"):
                    trace.append({"error": list(callee.failure)})
                else:
                    raise Terminal(*callee.failure)
            elif kind == "awakeable":
                if "reject" in op:
                    if not op.get("catch"):
                        raise Terminal(500, op["reject"])
                    trace.append({"error": [500, op["reject"]]})
                else:
                    trace.append(op.get("value"))
            elif kind == "terminal":
                raise Terminal(op["code"], op["message"])
            else:
                raise AssertionError(f"unknown op {kind!r}")
        return trace


def nodes(prog: dict[str, Any], key: str | None = None) -> list[tuple[dict[str, Any], str | None]]:
    """Every program node of a tree with the key it runs on, the root first."""
    out = [(prog, key)]
    for op in prog["ops"]:
        if op["op"] in ("call", "send"):
            out += nodes(op["prog"], op["key"] if op["target"] == "obj" else None)
    return out
