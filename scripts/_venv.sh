# Sourced by the other scripts: a project virtualenv with the given extras, installed once and
# refreshed whenever pyproject.toml changes, so a fresh machine needs only Python 3.11 and pip.
extras="${1:-test}"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
stamp=".venv/.installed-$extras"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e ".[$extras]"
    touch "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"
