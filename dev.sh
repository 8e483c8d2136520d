#!/usr/bin/env bash
# The two set-up commands of the README:
#   bash dev.sh demo   -> virtualenv + install + `opendms demo` (no database server needed)
#   bash dev.sh test   -> virtualenv + install + Debian server packages if missing + lint + tests
# Both work on a fresh Debian 12 with Python 3.11, as root, with nothing running.
set -euo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-python3}
VENV=.venv
export PIP_DISABLE_PIP_VERSION_CHECK=1 DEBIAN_FRONTEND=noninteractive

log() { printf '\033[1m[dev]\033[0m %s\n' "$*" >&2; }

apt_install() {
  if [ "$(id -u)" != 0 ]; then
    log "missing Debian packages: $* (run as root, or install them yourself)"; exit 1
  fi
  log "apt-get install $*"
  # Keep package scripts from starting system services; the tests start their own.
  local policy=/usr/sbin/policy-rc.d created=0
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; created=1; fi
  apt-get update -qq >/dev/null || true
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  if [ "$created" = 1 ]; then rm -f "$policy"; fi
}

ensure_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV"
    if ! "$PY" -m venv "$VENV" 2>/dev/null; then
      rm -rf "$VENV"
      apt_install python3-venv
      "$PY" -m venv "$VENV"
    fi
  fi
  local stamp="$VENV/.opendms-$1-$(sha1sum pyproject.toml | cut -c1-12)"
  if [ ! -e "$stamp" ]; then
    log "installing opendms[$1] into $VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
    "$VENV/bin/python" -m pip install -q -e ".[$1]"
    rm -f "$VENV"/.opendms-"$1"-*; touch "$stamp"
  fi
  # Byte-compile our sources once (an editable install does not, and with
  # PYTHONDONTWRITEBYTECODE set every start would compile them again).
  "$VENV/bin/python" -m compileall -q src >/dev/null
}

ensure_servers() {
  local pkgs=()
  ls /usr/lib/postgresql/15/bin/initdb >/dev/null 2>&1 || pkgs+=(postgresql-15 postgresql-client-15)
  command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || pkgs+=(mariadb-server mariadb-client)
  command -v wrk >/dev/null 2>&1 || pkgs+=(wrk)  # bench/serve_load.py
  # the console's browser tests drive Debian's chromium (Playwright never downloads one)
  command -v chromium >/dev/null 2>&1 || pkgs+=(chromium)
  # dynalite (a DynamoDB server, from npm on first use) runs on Node.js
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || pkgs+=(nodejs npm)
  # private brokers of the nats:// and redis:// target tests
  command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || pkgs+=(nats-server)
  command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || pkgs+=(redis-server)
  if [ "${#pkgs[@]}" -gt 0 ]; then apt_install "${pkgs[@]}"; fi
}

case "${1:-}" in
  demo)
    shift
    ensure_venv all
    exec "$VENV/bin/opendms" demo "$@"
    ;;
  test)
    shift
    ensure_venv dev
    ensure_servers
    log "ruff"
    "$VENV/bin/ruff" check src tests bench examples
    log "mypy --strict"
    "$VENV/bin/mypy" --strict
    log "pytest"
    set +e
    # two workers, a test file each at a time: the servers of one file are its own
    "$VENV/bin/pytest" -q -ra -n 2 --dist loadfile "$@"
    rc=$?
    set -e
    if [ "$rc" = 5 ]; then log "pytest collected no tests"; exit 1; fi
    exit "$rc"
    ;;
  taxi)
    # examples/taxi/run.sh: seed 000's story on private servers (needs the test harness)
    shift
    ensure_venv dev
    ensure_servers
    exec "$VENV/bin/python" examples/taxi/story.py "$@"
    ;;
  *)
    echo "usage: bash dev.sh demo | bash dev.sh test [pytest args] | bash dev.sh taxi" >&2
    exit 2
    ;;
esac
