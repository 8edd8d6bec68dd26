#!/usr/bin/env bash
# Idempotent set-up of a fresh machine: system packages, a virtualenv in .venv,
# Python dependencies, and the Rust extension built in release mode.
#
# The RocksDB C++ build is long (~15 min on 2 cores), so Cargo builds into a target
# directory outside the clone that survives between runs on the same machine
# ($STEAD_CARGO_TARGET, default ~/.cache/stead/target). cargo test and maturin both
# build with the release profile so that RocksDB is compiled once for both.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${STEAD_CARGO_TARGET:-$HOME/.cache/stead/target}"
mkdir -p "$CARGO_TARGET_DIR"

need_pkgs=()
for pkg in libclang-dev protobuf-compiler clang wrk chromium; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_pkgs+=("$pkg")
done
command -v npm >/dev/null || need_pkgs+=(npm)  # Restate's CLI, below
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "setup: installing ${need_pkgs[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

command -v cargo >/dev/null || { echo "setup: cargo not found: install Rust (rustup) first" >&2; exit 1; }

# scripts/fuzz: cargo-fuzz, which needs a nightly toolchain (a broken one, e.g. without its
# rustc, is installed again).
if ! rustc +nightly --version >/dev/null 2>&1; then
  echo "setup: installing the nightly Rust toolchain (for cargo fuzz)"
  rustup toolchain uninstall nightly >/dev/null 2>&1 || true
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "setup: installing cargo-fuzz into ~/.cargo/bin"
  env -u CARGO_TARGET_DIR cargo install cargo-fuzz --locked --version "^0.13"
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q "maturin>=1.9,<2"
# Editable install: dependencies from pyproject.toml, the extension built into runtime/.
# The dev/test build has failpoints (core_rs/src/failpoints.rs) so tests can inject
# writer failures; release wheels (plain `maturin build`) do not. Features given here
# replace [tool.maturin] features instead of adding to them: name extension-module too.
MATURIN_PEP517_ARGS="--features extension-module,failpoints" python -m pip install -q --no-build-isolation -e '.[test]'
python -c 'from runtime import _core; assert _core.failpoints_enabled(), "the dev build of runtime._core lacks failpoints"'

# Restate's own CLI (npm @restatedev/restate, 1.7), which tests/runtime/test_restate_cli_e2e.py
# runs against Stead's admin API as a Restate user would; cached beside the Cargo target.
RESTATE_CLI_DIR="${STEAD_RESTATE_CLI:-$HOME/.cache/stead/restate-cli}"
if [ ! -x "$RESTATE_CLI_DIR/node_modules/.bin/restate" ]; then
  echo "setup: installing Restate's CLI into $RESTATE_CLI_DIR"
  npm install --silent --no-audit --no-fund --prefix "$RESTATE_CLI_DIR" @restatedev/restate@1.7.12
fi
