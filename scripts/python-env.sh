#!/usr/bin/env bash
# Python environment with the reference Faust (faust-streaming) for interop
# tests and benchmarks.
#
# Usage:
#   scripts/python-env.sh          create/refresh <repo>/.venv if needed and
#                                  print the venv's python path on stdout
#   scripts/python-env.sh check    same, then run an offline smoke test (an
#                                  agent under test_context, no broker)
#   scripts/python-env.sh clean    delete the venv
#
# Typical use in a test script:
#   PY="$(scripts/python-env.sh)"
#   "$PY" tests/interop/some_faust_app.py
#
# Idempotent: the venv is (re)built only when scripts/python-requirements.txt
# or the interpreter version changed. All progress messages go to stderr, so
# stdout is only the python path.
#
# Environment:
#   PYTHON       interpreter to build the venv from (default: python3.11 if
#                present, else python3)
#   FAUST_VENV   venv location (default <repo>/.venv)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
REQS="$SCRIPT_DIR/python-requirements.txt"
VENV="${FAUST_VENV:-$ROOT/.venv}"

log() { echo "python-env.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

if [[ -z "${PYTHON:-}" ]]; then
  if command -v python3.11 >/dev/null; then PYTHON=python3.11; else PYTHON=python3; fi
fi

cmd_clean() {
  rm -rf "$VENV"
  log "removed $VENV"
}

ensure_venv() {
  command -v "$PYTHON" >/dev/null || die "$PYTHON not found"
  local pyver stamp marker
  pyver="$("$PYTHON" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
  stamp="$( (cat "$REQS"; echo "$pyver") | sha256sum | cut -c1-16)"
  marker="$VENV/.faust-env-$stamp"
  if [[ -f "$marker" && -x "$VENV/bin/python" ]]; then
    return 0
  fi

  # Serialise concurrent callers (parallel test jobs). The lock lives outside
  # the repo so that it never shows up as an untracked file.
  if command -v flock >/dev/null; then
    local lock
    lock="/tmp/faust-python-env-$(echo "$VENV" | sha256sum | cut -c1-12).lock"
    exec 9>"$lock"
    flock -w 600 9 || die "timed out waiting for $lock"
    if [[ -f "$marker" && -x "$VENV/bin/python" ]]; then
      exec 9>&-
      return 0
    fi
  fi

  local t0=$SECONDS
  # A venv from another interpreter version cannot be upgraded in place.
  if [[ -x "$VENV/bin/python" ]]; then
    local have
    have="$("$VENV/bin/python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null || true)"
    if [[ "$have" != "$pyver" ]]; then
      log "venv has python '$have', want $pyver: recreating"
      rm -rf "$VENV"
    fi
  elif [[ -e "$VENV" ]]; then
    rm -rf "$VENV"
  fi
  if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating venv $VENV with $PYTHON ($pyver)"
    "$PYTHON" -m venv "$VENV" >&2 ||
      die "python -m venv failed (on Debian: apt-get install python3-venv)"
  fi
  rm -f "$VENV"/.faust-env-*
  log "installing $(grep -cv '^\s*\(#\|$\)' "$REQS") pinned packages from $REQS"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
    --no-input -r "$REQS" >&2 || die "pip install failed"
  "$VENV/bin/python" -c 'import faust, aiokafka' >&2 ||
    die "faust does not import in $VENV"
  touch "$marker"
  log "ready after $((SECONDS - t0)) s: faust-streaming $("$VENV/bin/python" -c 'import faust; print(faust.__version__)'), aiokafka $("$VENV/bin/python" -c 'import aiokafka; print(aiokafka.__version__)')"
  exec 9>&-
}

cmd_check() {
  ensure_venv
  "$VENV/bin/python" - >&2 <<'EOF'
import asyncio
import faust

# The default broker is never contacted: test_context() runs the agent on an
# in-process channel. (faust-streaming has no memory:// transport.)
app = faust.App("python-env-check", store="memory://", web_enabled=False)
topic = app.topic("python-env-check-numbers", value_type=int)

@app.agent(topic)
async def double(stream):
    async for value in stream:
        yield value * 2

async def main():
    async with double.test_context() as agent:
        event = await agent.put(21)
        assert agent.results[event.message.offset] == 42, agent.results

asyncio.run(main())
print("python-env.sh: faust smoke test passed (faust %s)" % faust.__version__)
EOF
}

case "${1:-}" in
  "") ensure_venv ;;
  check) cmd_check ;;
  clean) cmd_clean; exit 0 ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
echo "$VENV/bin/python"
