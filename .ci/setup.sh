#!/usr/bin/env bash
# Set up styleunwarp on a fresh Debian machine with Python 3.11: Java + ImageJ 1 + Xvfb
# from Debian, then a virtual environment in .venv with torch 2.13.0 (CPU) first and the
# package with its test dependencies. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v java >/dev/null 2>&1 || need_apt+=(default-jre-headless)
[ -f /usr/share/java/ij.jar ] || need_apt+=(libij-java)
command -v xvfb-run >/dev/null 2>&1 || need_apt+=(xvfb)
[ -f /usr/share/java/jython.jar ] || need_apt+=(jython)  # runs the Fiji script-editor script in tests
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${need_apt[*]} (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "setup: please install ${need_apt[*]} (e.g. sudo apt-get install ${need_apt[*]})" >&2
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
# torch first, pinned to the CPU build, so that the package's range installs nothing more
if ! .venv/bin/python -c 'import torch' >/dev/null 2>&1; then
  echo "setup: installing torch 2.13.0 (CPU)"
  .venv/bin/pip install -q --disable-pip-version-check torch==2.13.0
fi
.venv/bin/pip install -q --disable-pip-version-check -e '.[test,baselines]'
echo "setup: done (.venv/bin/styleunwarp doctor tells what was found)"
