# Sourced by scripts/compare_surprise.sh and scripts/bench/models.sh:
#
#   reference_venv [EXTRA_PACKAGE...]
#
# makes sure the virtualenv $VENV (default target/surprise-venv) exists and
# holds numpy, pandas and scikit-surprise 1.1.5 (the version issue 3 quotes)
# plus any EXTRA_PACKAGE (e.g. implicit), all from PyPI, and sets PY to its
# python. On CPython 3.11 / x86_64 PyPI has a manylinux wheel of
# scikit-surprise 1.1.5 that works with numpy 2.x; elsewhere pip builds the
# sdist, which needs a C compiler and Python.h (installed with apt when
# running as root). If a source build fails against numpy 2, set
# SURPRISE_NUMPY='numpy<2'.

reference_venv() {
  local venv=${VENV:-$ROOT/target/surprise-venv}
  local surprise=scikit-surprise==1.1.5 numpy=${SURPRISE_NUMPY:-numpy}
  if [ ! -x "$venv/bin/python" ]; then
    echo "==> creating virtualenv $venv" >&2
    if ! python3 -m venv "$venv" 2>/dev/null; then
      rm -rf "$venv"
      if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        echo "==> python3 -m venv failed; installing python3-venv" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null \
          || { echo "error: apt-get install python3-venv failed" >&2; return 1; }
        python3 -m venv "$venv" \
          || { echo "error: python3 -m venv failed even with python3-venv" >&2; return 1; }
      else
        echo "error: python3 -m venv failed: install python3-venv" >&2
        return 1
      fi
    fi
  fi
  PY=$venv/bin/python
  if ! "$PY" -c 'import surprise, pandas; assert surprise.__version__ == "1.1.5"' 2>/dev/null; then
    echo "==> pip install $numpy pandas $surprise" >&2
    local log
    log=$(mktemp)
    if ! "$PY" -m pip install -q "$numpy" pandas "$surprise" >"$log" 2>&1; then
      # The sdist needs a C compiler, Cython and Python.h; retry with build tools.
      if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq build-essential python3-dev \
          >/dev/null || true
      fi
      "$PY" -m pip install -q cython "$numpy" pandas >>"$log" 2>&1 || true
      if ! "$PY" -m pip install -q --no-build-isolation "$surprise" >>"$log" 2>&1; then
        tail -30 "$log" >&2
        echo "error: scikit-surprise cannot be installed (pip output above, full log $log)" >&2
        return 1
      fi
    fi
    rm -f "$log"
  fi
  local p
  for p in "$@"; do
    if ! "$PY" -c "import $p" 2>/dev/null; then
      echo "==> pip install $p" >&2
      "$PY" -m pip install -q "$p" >&2 || { echo "error: pip install $p failed" >&2; return 1; }
    fi
  done
  "$PY" -c 'import surprise' \
    || { echo "error: scikit-surprise is installed but does not import" >&2; return 1; }
}
