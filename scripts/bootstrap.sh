#!/usr/bin/env bash
# Creates .venv/ with every dependency, idempotently and cached.
#
# Third-party packages (torch alone is ~3 GB) are installed once into a cache folder keyed by
# the hash of requirements/lock.txt; .venv/ is then a small virtual environment that sees them
# through a .pth file, plus the checkout itself on its path and the `finsent` launcher. A fresh clone therefore
# takes seconds once the cache exists, and a changed lock file builds a new cache entry.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
CACHE=${FINSENT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/finsent}
hash=$(cat requirements/lock.txt | sha256sum | cut -c1-16)
deps="$CACHE/deps-$hash"

if [ ! -f "$deps/.complete" ]; then
  echo "bootstrap: installing dependencies into $deps (first time only; torch is large)"
  rm -rf "$deps"
  "$PY" -m venv "$deps"
  "$deps/bin/pip" install --quiet --disable-pip-version-check -r requirements/lock.txt
  touch "$deps/.complete"
fi

site_deps=$("$deps/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if [ ! -x .venv/bin/python ] || [ "$(cat .venv/.deps 2>/dev/null)" != "$deps" ]; then
  rm -rf .venv
  "$PY" -m venv .venv
  echo "$deps" > .venv/.deps
fi
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$site_deps" > "$site/finsent-deps.pth"
# The project itself runs from the checkout (like an editable install, without a build step
# that would mix the venv's bundled setuptools with the cached one).
echo "$PWD" > "$site/finsent-src.pth"
cat > .venv/bin/finsent <<LAUNCHER
#!$PWD/.venv/bin/python
import sys

from pipeline.cli import main

sys.exit(main())
LAUNCHER
chmod +x .venv/bin/finsent
echo "bootstrap: .venv ready (deps $hash)"
