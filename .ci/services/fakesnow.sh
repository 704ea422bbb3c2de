# shellcheck shell=bash
# Sourced by .ci/run once the test venv exists: fakesnow, the Snowflake emulator the Snowflake
# tests run against (not Snowflake itself), as a server on 127.0.0.1:$FAKESNOW_PORT. It runs from
# a venv of its own (make .venv-fakesnow/.installed): fakesnow pins duckdb and sqlglot versions
# that driftline's own pins exclude. Exports DRIFTLINE_TEST_SNOWFLAKE_URL, which
# tests/test_snowflake_engine.py reads, and appends the server's PID to $CI_PIDS_FILE. By hand:
# CI_PIDS_FILE=/tmp/pids source .ci/services/fakesnow.sh, and later kill $(cat /tmp/pids).

start_fakesnow() {
  local port="${FAKESNOW_PORT:-18765}" log waited=0
  make .venv-fakesnow/.installed
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "127.0.0.1:$port is taken by another process; set FAKESNOW_PORT to a free port" >&2
    return 1
  fi
  log="$(mktemp -t driftline-fakesnow.XXXXXX)"
  .venv-fakesnow/bin/fakesnow --server --host 127.0.0.1 --port "$port" >"$log" 2>&1 &
  echo $! >>"$CI_PIDS_FILE"
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    if [ "$waited" -ge 60 ]; then
      echo "fakesnow did not answer on 127.0.0.1:$port in 60 s:" >&2
      tail -n 20 "$log" >&2
      return 1
    fi
    sleep 1
    waited=$((waited + 1))
  done
  # The tests create a database of their own beside this one; fakesnow accepts any password.
  export DRIFTLINE_TEST_SNOWFLAKE_URL="snowflake://fake:snow@fakesnow/driftline?host=127.0.0.1&port=$port&protocol=http"
}

start_fakesnow
