"""Random programs against a model (issue 11, part 2).

Hypothesis generates handler programs (state get/set/clear/clear_all/keys, steps that
succeed, fail retryably a few times, fail terminally or exhaust their attempts, sleeps,
calls and sends (also delayed) to other generated programs on other keys or on the
service, awakeables resolved or rejected from outside, retryable handler failures,
terminal errors), up to three root programs at once (two may share a key, so one
queues behind the other), and the state of the root keys before (written through the
admin API). They run on one real `stead serve` of tests/reliability/model_app.py, while
crashes are injected (the kinds: tests/reliability/model_harness.py).

Once every invocation of the example has completed, it checks:

- each invocation's outcome (output or terminal failure, through the admin API, and for
  the roots through the ingress's attach) and the final state of every key (through the
  admin API and as a handler reads it) equal what tests/reliability/model.py computes;
- an invocation exists for each program node the model reached, and for no other; a
  root sent again with its idempotency key is the same invocation;
- no journaled step ran again: for every step, the execution whose result (or failure)
  the journal holds is the last one the effects file recorded, every step that ran is
  journaled, and the handler saw the journaled result;
- a step that failed retryably `n` times before succeeding ran its body `n` times
  failing, not fewer (a crash does not reset the count) and not more;
- a server stops with status 3 when a failpoint fires (see KNOWN_BUGS).

Three runs: without crashes; with crashes; and with --always-replay in `wal` durability,
with or without crashes. Every example uses fresh keys, so one server serves a whole
hypothesis run. `pytest --hypothesis-show-statistics` shows what the examples covered
(ops, crash kinds, crashes that fired).

Reproducible: the examples are derandomized (the same programs and crash plans on every
run; only the server's timing varies). A failure prints the falsifying example (also as
JSON, keys placed, in the notes, with the events: crashes armed, fired, restarts) and
the line to re-run it. Shrinking is off by default (a failing example with crashes
shrinks for minutes, past the per-test timeout); STEAD_MODEL_SHRINK=1 turns it on, and
the shrunk counterexample becomes a regular test in test_model_regressions.py. To search
beyond the CI examples: STEAD_MODEL_SEED=random (or a number) STEAD_MODEL_EXAMPLES=500.

The parts, one job each: tests/reliability/model_programs.py generates the programs and
crash plans, model_harness.py runs them on a server and injects the crashes,
model_checks.py checks what happened against tests/reliability/model.py. This module
holds the property tests and their settings.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

# The harness and the checks assert (pytest's rewriting explains a failed comparison):
# rewritten like this module, so they must be registered before they are imported.
pytest.register_assert_rewrite("tests.reliability.model_checks", "tests.reliability.model_harness")

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from tests.reliability.model_harness import Harness, start_harness
from tests.reliability.model_programs import CRASHES, INITIAL, ROOTS, note

# ---- the tests ---------------------------------------------------------------------------


def _settings(examples: int) -> settings:
    """CI: derandomized, `examples` examples, no shrinking (a shrink of a failure that
    needs crashes takes minutes, past the per-test timeout: the failure is reported as
    found, with its programs). Locally: STEAD_MODEL_SHRINK=1 shrinks it."""
    phases = [Phase.explicit, Phase.reuse, Phase.generate]
    if os.environ.get("STEAD_MODEL_SHRINK"):
        phases.append(Phase.shrink)
    return settings(
        max_examples=int(os.environ.get("STEAD_MODEL_EXAMPLES", examples)),
        phases=phases,
        deadline=None,
        derandomize=os.environ.get("STEAD_MODEL_SEED") is None,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def _seeded(test: Any) -> Any:
    """Derandomized unless STEAD_MODEL_SEED names a seed (or "random")."""
    value = os.environ.get("STEAD_MODEL_SEED")
    if value is None:
        return test
    return seed(int(value) if value != "random" else int.from_bytes(os.urandom(4), "big"))(test)



@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    yield from start_harness(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def replaying(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    """A server that replays every invocation after each durable point (--always-replay),
    in `wal` durability (the WAL written, not fsynced: enough for a process crash)."""
    yield from start_harness(tmp_path_factory.mktemp("model-replay"), "--always-replay", "--durability", "wal")


def _replay_hint(name: str) -> str:
    return (f"re-run: pytest 'tests/reliability/test_model.py::{name}' "
            f"(derandomized: the same examples; STEAD_MODEL_SEED=N to pick others)")


@_seeded
@_settings(150)
@given(roots=ROOTS, initial=INITIAL)
def test_programs_match_the_model(harness: Harness, roots: list[tuple[str, dict[str, Any]]],
                                  initial: dict[str, dict[str, Any]]) -> None:
    note(_replay_hint("test_programs_match_the_model"))
    harness.run(roots, [], initial)


@_seeded
@_settings(60)
@given(roots=ROOTS, crashes=st.one_of(st.just([]), CRASHES))
def test_programs_match_the_model_when_always_replaying(replaying: Harness,
                                                        roots: list[tuple[str, dict[str, Any]]],
                                                        crashes: list[tuple[str, int]]) -> None:
    note(_replay_hint("test_programs_match_the_model_when_always_replaying"))
    replaying.run(roots, crashes)


@_seeded
@_settings(60)
@given(roots=ROOTS, crashes=CRASHES, initial=INITIAL)
def test_programs_match_the_model_across_crashes(harness: Harness, roots: list[tuple[str, dict[str, Any]]],
                                                 crashes: list[tuple[str, int]],
                                                 initial: dict[str, dict[str, Any]]) -> None:
    note(_replay_hint("test_programs_match_the_model_across_crashes"))
    harness.run(roots, crashes, initial)
