"""The nemesis soak (issue 11, part 1; not CI): tests/reliability/nemesis.py's run for as
long as asked, with the same invariants as the CI run (tests/reliability/test_nemesis.py).

A real `stead serve` under the mixed workload, while the nemesis kills it (-9, once or
twice in a row, or right after a pause), pauses it (SIGSTOP longer than the clients'
timeout) and slows its disk (the failpoint `commit.before_sync=sleep(ms)`), at random
moments from a seeded RNG, until --seconds
have passed (or --actions actions were taken); then the last restart, the quiet period
and the checks. Prints the seed first, then the figures and every violation; exits 1 if
the run broke an invariant, 2 if the harness itself failed.

    .venv/bin/python bench/nemesis.py --seconds 600             # a random seed, printed
    .venv/bin/python bench/nemesis.py --seconds 3600 --seed 7   # the one-hour soak
    .venv/bin/python bench/nemesis.py --actions 12 --seed 1005  # what CI runs
    .venv/bin/python bench/nemesis.py --seconds 120 --break no-barrier \\
        --failpoints 'commit.before_write=sleep(300)'          # a broken build, to see it caught

The same seed replays the same schedules (each client's ops, the nemesis' actions and
their durations); timing differs, so where a kill lands among the ops differs too. The
run directory (server logs, nemesis.log, ops.jsonl, the data directory) goes under
bench/out/ (gitignored) and is removed after a passing run unless --keep; a directory
given with --work-dir is always kept.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.reliability.nemesis import Config, run_nemesis  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=600.0, help="act for this long (default 600)")
    p.add_argument("--actions", type=int, default=None, help="take this many nemesis actions instead")
    p.add_argument("--seed", type=int, default=None, help="the run's seed (default: a random one, printed)")
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--client-timeout", type=float, default=2.0, help="s; pauses last 1.3 to 2x this")
    p.add_argument("--gap", default="1,4", help="min,max seconds between nemesis actions (default 1,4)")
    p.add_argument("--nemesis", default="kill,kill2,pause,pause-kill,slow", help="the actions to draw from")
    p.add_argument("--durability", choices=("sync", "wal"), default="sync")
    p.add_argument("--suspend-after", default="0.5s")
    p.add_argument("--break", dest="breaks", default="", help="STEAD_NEMESIS_BREAK: a deliberately broken build")
    p.add_argument("--failpoints", default="", help="STEAD_FAILPOINTS of the server at every start")
    p.add_argument("--work-dir", type=Path, default=None, help="the run directory (kept); default: bench/out/nemesis-*")
    p.add_argument("--keep", action="store_true", help="keep the default run directory even if the run passed")
    p.add_argument("--json", type=Path, default=None, help="also write the figures and violations here")
    args = p.parse_args(argv)

    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 10**9)
    print(f"nemesis seed {seed}", flush=True)
    low, high = (float(x) for x in args.gap.split(","))
    config = Config(seed=seed, actions=args.actions, seconds=None if args.actions is not None else args.seconds,
                    clients=args.clients, client_timeout=args.client_timeout, gap=(low, high),
                    nemesis=tuple(n.strip() for n in args.nemesis.split(",") if n.strip()),
                    durability=args.durability, suspend_after=args.suspend_after, breaks=args.breaks,
                    failpoints=args.failpoints, quiet_timeout=120.0, drain_timeout=120.0)
    work_dir = args.work_dir or REPO / "bench" / "out" / f"nemesis-{time.strftime('%Y%m%d-%H%M%S')}-{seed}"
    work_dir.mkdir(parents=True, exist_ok=True)
    try:
        report = run_nemesis(config, work_dir, log=lambda line: print(line, flush=True))
    except Exception as exc:  # noqa: BLE001 - the harness failed: say so with the seed, keep the directory
        print(f"the harness failed (seed {seed}, kept {work_dir}): {exc!r}", file=sys.stderr)
        for note in getattr(exc, "__notes__", []):
            print(f"  {note}", file=sys.stderr)
        return 2
    print(report.summary(), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps({"seed": seed, "figures": report.figures,
                                         "violations": report.violations}, indent=2) + "\n")
    if report.violations:
        print(f"FAILED: seed {seed}; run directory kept: {work_dir}")
        return 1
    if not args.keep and args.work_dir is None:
        shutil.rmtree(work_dir, ignore_errors=True)
    print(f"passed: seed {seed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
