# A throwaway MLflow tracking server on a free loopback port, for
# tests/mlflow.rs. Source this file, then:
#
#   mlflow_server_start      # in the background: installs MLflow on first use, starts the server
#   ...                      # other work (the build) meanwhile
#   mlflow_server_wait       # blocks until /health answers; MLFLOW_SERVER_URI is its URL
#   mlflow_server_stop       # stops it and removes its files
#
# MLflow is pip-installed into a virtualenv cached in target/mlflow-venv
# (CINEMATCH_MLFLOW_VENV moves it), reinstalled only when MLFLOW_VERSION
# changes. The server keeps its runs in a SQLite file in a temporary folder.

MLFLOW_VERSION="${MLFLOW_VERSION:-3.17.2}"
MLFLOW_VENV="${CINEMATCH_MLFLOW_VENV:-$PWD/target/mlflow-venv}"
MLFLOW_SERVER_PID=""
MLFLOW_SERVER_DIR=""
MLFLOW_SERVER_URI=""

mlflow_installed() {
  [ "$(cat "$MLFLOW_VENV/.cinematch-mlflow" 2>/dev/null)" = "$MLFLOW_VERSION" ] &&
    [ -x "$MLFLOW_VENV/bin/mlflow" ]
}

mlflow_install() {
  mlflow_installed && return 0
  echo "installing mlflow $MLFLOW_VERSION into $MLFLOW_VENV"
  local t0=$SECONDS
  rm -rf "$MLFLOW_VENV"
  if ! python3 -m venv "$MLFLOW_VENV"; then
    # Debian's own python3 needs python3-venv for ensurepip.
    rm -rf "$MLFLOW_VENV"
    if [ "$(id -u)" -ne 0 ]; then
      echo "error: python3 -m venv failed; install python3-venv (apt-get install python3-venv)"
      return 1
    fi
    echo "installing python3-venv with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null &&
      python3 -m venv "$MLFLOW_VENV" || return 1
  fi
  "$MLFLOW_VENV/bin/python" -m pip install -q --no-compile --disable-pip-version-check "mlflow==$MLFLOW_VERSION" || return 1
  echo "$MLFLOW_VERSION" >"$MLFLOW_VENV/.cinematch-mlflow"
  echo "mlflow installed in $((SECONDS - t0))s"
}

mlflow_server_start() {
  MLFLOW_SERVER_DIR=$(mktemp -d "${TMPDIR:-/tmp}/cinematch-mlflow.XXXXXX")
  local port
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  MLFLOW_SERVER_URI="http://127.0.0.1:$port"
  if mlflow_installed; then
    echo "    mlflow $MLFLOW_VERSION from $MLFLOW_VENV"
  else
    echo "    installing mlflow $MLFLOW_VERSION into $MLFLOW_VENV in the background (once; later runs reuse it)"
  fi
  # In the background: install when needed (without precompiling every
  # module, which doubles the install time; the server compiles what it
  # imports), then become the server. It gets its own session, so stopping
  # it stops the web workers it spawns too; no background job runner (the
  # tests need none; it costs startup time and processes) and no usage
  # telemetry (closed network).
  (
    mlflow_install >"$MLFLOW_SERVER_DIR/install.log" 2>&1 || exit 1
    export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true
    exec setsid "$MLFLOW_VENV/bin/mlflow" server \
      --host 127.0.0.1 --port "$port" --workers 1 \
      --backend-store-uri "sqlite:///$MLFLOW_SERVER_DIR/mlflow.db" \
      --default-artifact-root "$MLFLOW_SERVER_DIR/artifacts" \
      </dev/null >"$MLFLOW_SERVER_DIR/server.log" 2>&1
  ) &
  MLFLOW_SERVER_PID=$!
}

mlflow_server_wait() {
  local deadline=$((SECONDS + ${1:-900}))
  until python3 -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('$MLFLOW_SERVER_URI/health', timeout=2).status != 200)" 2>/dev/null; do
    if ! kill -0 "$MLFLOW_SERVER_PID" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
      echo "error: the MLflow server did not come up at $MLFLOW_SERVER_URI" >&2
      local f
      for f in install.log server.log; do
        if [ -s "$MLFLOW_SERVER_DIR/$f" ]; then
          echo "--- $f:" >&2
          tail -n 40 "$MLFLOW_SERVER_DIR/$f" >&2
        fi
      done
      return 1
    fi
    sleep 1
  done
  grep -h "installed in" "$MLFLOW_SERVER_DIR/install.log" 2>/dev/null | sed 's/^/    /' || true
}

mlflow_server_stop() {
  if [ -n "$MLFLOW_SERVER_PID" ]; then
    # The server's session, or the installing subshell and its pip.
    kill -TERM -- "-$MLFLOW_SERVER_PID" 2>/dev/null ||
      { pkill -TERM -P "$MLFLOW_SERVER_PID" 2>/dev/null; kill -TERM "$MLFLOW_SERVER_PID" 2>/dev/null; } || true
    local i
    for i in $(seq 1 50); do
      kill -0 "$MLFLOW_SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL -- "-$MLFLOW_SERVER_PID" 2>/dev/null || true
    MLFLOW_SERVER_PID=""
  fi
  if [ -n "$MLFLOW_SERVER_DIR" ]; then
    rm -rf "$MLFLOW_SERVER_DIR"
    MLFLOW_SERVER_DIR=""
  fi
}
