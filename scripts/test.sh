#!/usr/bin/env bash
# The whole test suite, on a fresh machine as on a developer's.
#
# Some tests read the log with the tools users read it with: jq and lnav
# (tests/tools.rs, tests/scenarios.rs), DuckDB's Python module (the DuckDB
# recipe), and `unshare` runs a child as PID 1 (tests/crash.rs). Those tests
# fail loudly when a tool is missing; this script installs what is missing
# first (Debian packages with apt-get, DuckDB in a virtual environment under
# target/ so that the system's Python stays as it is), then runs
# `cargo test --workspace` with any arguments given to it, and the
# `opentelemetry` feature's test.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive

# Runs apt-get as root, through sudo when this is not root.
apt_install() {
  local sudo=()
  if [ "$(id -u)" != 0 ]; then
    if ! command -v sudo >/dev/null; then
      echo "scripts/test.sh: $* must be installed and this is not root: apt-get install -y $*" >&2
      exit 1
    fi
    sudo=(sudo)
  fi
  echo "scripts/test.sh: installing $* (needed by the tests)" >&2
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq "$@" >/dev/null
}

missing=()
command -v jq >/dev/null || missing+=(jq)
command -v lnav >/dev/null || missing+=(lnav)
command -v unshare >/dev/null || missing+=(util-linux)
command -v python3 >/dev/null || missing+=(python3)
if command -v python3 >/dev/null && ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  missing+=(python3-venv)
fi
if [ ${#missing[@]} -gt 0 ]; then
  apt_install "${missing[@]}"
fi

venv="$PWD/target/test-python"
if ! "$venv/bin/python" -c 'import duckdb' 2>/dev/null; then
  echo "scripts/test.sh: installing DuckDB's Python module into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q duckdb
fi
export LASTWORDS_TEST_PYTHON="$venv/bin/python"

cargo test --workspace "$@"

# The `opentelemetry` feature is off by default: its test needs it on.
exec cargo test -p lastwords --features opentelemetry --test trace_ids "$@"
