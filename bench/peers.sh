#!/usr/bin/env bash
# taskmill beside its peers, in one command: bench/peers.sh [--quick] [run.py options]
# Creates bench/.peers-venv (once), installs the pinned peers and taskmill into it (again only when
# a requirements file or pyproject.toml changed), then runs bench/peers/run.py with that venv.
# Needs Redis on 127.0.0.1:6379 (db 15 is used) and PostgreSQL on 127.0.0.1:5432 (user postgres).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=bench/.peers-venv
PYTHON=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), "taskmill needs Python 3.11+"'
  "$PYTHON" -m venv "$VENV"
fi
STAMP="$VENV/.installed"
WANT=$(cat bench/peers/requirements.txt bench/peers/requirements-nodeps.txt pyproject.toml | sha256sum)
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  echo "== installing the peers and taskmill into $VENV" >&2
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -r bench/peers/requirements.txt -e '.[postgres,redis]'
  # arq declares redis<6, which Celery's kombu excludes: installed without its declared dependencies.
  "$VENV/bin/pip" install -q --no-deps -r bench/peers/requirements-nodeps.txt
  echo "$WANT" > "$STAMP"
fi
BENCH_PEERS_COMMAND="bench/peers.sh $*" exec "$VENV/bin/python" bench/peers/run.py "$@"
