# Apache Airflow for tests/airflow.rs, which loads the DAG in a real DagBag
# and runs `airflow dags test`. Source this file, then:
#
#   airflow_install_start    # in the background: installs Airflow on first use
#   ...                      # other work (the build) meanwhile
#   airflow_install_wait     # blocks until the install is done; 1 if it failed
#
# or `airflow_install` in the foreground. Airflow is pip-installed into a
# virtualenv cached in target/airflow-venv (CINEMATCH_AIRFLOW_VENV moves it),
# reinstalled only when AIRFLOW_VERSION changes; the tests read its path from
# CINEMATCH_TEST_AIRFLOW. A clean install takes about a minute (about 225 MB).

AIRFLOW_VERSION="${AIRFLOW_VERSION:-3.3.2}"
AIRFLOW_VENV="${CINEMATCH_AIRFLOW_VENV:-$PWD/target/airflow-venv}"
AIRFLOW_INSTALL_PID=""
AIRFLOW_INSTALL_LOG=""

airflow_installed() {
  [ "$(cat "$AIRFLOW_VENV/.cinematch-airflow" 2>/dev/null)" = "$AIRFLOW_VERSION" ] &&
    [ -x "$AIRFLOW_VENV/bin/airflow" ]
}

airflow_install() {
  airflow_installed && return 0
  echo "installing apache-airflow $AIRFLOW_VERSION into $AIRFLOW_VENV"
  local t0=$SECONDS
  rm -rf "$AIRFLOW_VENV"
  if ! python3 -m venv "$AIRFLOW_VENV"; then
    rm -rf "$AIRFLOW_VENV"
    echo "error: python3 -m venv failed; install python3-venv (apt-get install python3-venv)"
    return 1
  fi
  # No precompiling of every module (it doubles the install time); Python
  # compiles what the tests import. The marker is written last, so a broken
  # install is never taken for a complete one.
  "$AIRFLOW_VENV/bin/python" -m pip install -q --no-compile --disable-pip-version-check \
    "apache-airflow==$AIRFLOW_VERSION" || return 1
  echo "$AIRFLOW_VERSION" >"$AIRFLOW_VENV/.cinematch-airflow"
  echo "apache-airflow installed in $((SECONDS - t0))s"
}

airflow_install_start() {
  AIRFLOW_INSTALL_LOG=$(mktemp "${TMPDIR:-/tmp}/cinematch-airflow-install.XXXXXX")
  if airflow_installed; then
    echo "    apache-airflow $AIRFLOW_VERSION from $AIRFLOW_VENV"
  else
    echo "    installing apache-airflow $AIRFLOW_VERSION into $AIRFLOW_VENV in the background (once; later runs reuse it)"
  fi
  airflow_install >"$AIRFLOW_INSTALL_LOG" 2>&1 &
  AIRFLOW_INSTALL_PID=$!
}

airflow_install_wait() {
  local rc=0
  if [ -n "$AIRFLOW_INSTALL_PID" ]; then
    wait "$AIRFLOW_INSTALL_PID" || rc=$?
    AIRFLOW_INSTALL_PID=""
  fi
  if [ $rc -ne 0 ] || ! airflow_installed; then
    echo "error: Apache Airflow $AIRFLOW_VERSION could not be installed into $AIRFLOW_VENV" >&2
    [ -s "$AIRFLOW_INSTALL_LOG" ] && tail -n 40 "$AIRFLOW_INSTALL_LOG" >&2
    rc=1
  else
    grep -h "installed in" "$AIRFLOW_INSTALL_LOG" 2>/dev/null | sed 's/^/    /' || true
  fi
  rm -f "$AIRFLOW_INSTALL_LOG"
  return $rc
}

airflow_install_stop() {
  if [ -n "$AIRFLOW_INSTALL_PID" ]; then
    # The installing subshell and its pip.
    pkill -TERM -P "$AIRFLOW_INSTALL_PID" 2>/dev/null || true
    kill -TERM "$AIRFLOW_INSTALL_PID" 2>/dev/null || true
    AIRFLOW_INSTALL_PID=""
  fi
  [ -n "$AIRFLOW_INSTALL_LOG" ] && rm -f "$AIRFLOW_INSTALL_LOG"
  AIRFLOW_INSTALL_LOG=""
}
