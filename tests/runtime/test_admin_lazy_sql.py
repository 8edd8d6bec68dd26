"""runtime/admin.py: the SQL engine (DuckDB, pyarrow: ~50 MiB) loads with the first query,
not with the server."""
from __future__ import annotations

import subprocess
import sys


def test_serving_does_not_load_the_sql_engine() -> None:
    code = ("import sys, runtime.cli, runtime.server, runtime.admin; "
            "print(sorted(m for m in ('duckdb', 'pyarrow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
