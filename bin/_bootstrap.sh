# Sourced by the bin/ commands: finds uv and Python 3.13, and syncs the locked environment.
# Nothing else is assumed of the machine; Postgres, S3 and the model are started by local/stack.py.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

say() { printf '%s\n' "$*" >&2; }

find_uv() {
    if command -v uv >/dev/null 2>&1 && uv --version >/dev/null 2>&1; then command -v uv; return; fi
    if [ -x "$ROOT/.local/uv/bin/uv" ]; then echo "$ROOT/.local/uv/bin/uv"; return; fi
    local py
    for py in python3 python; do
        if command -v "$py" >/dev/null 2>&1 && "$py" -m uv --version >/dev/null 2>&1; then
            echo "$py -m uv"; return
        fi
    done
    say "bootstrap: installing uv into .local/uv (from PyPI)"
    python3 -m venv "$ROOT/.local/uv" >&2
    "$ROOT/.local/uv/bin/pip" install --quiet uv >&2
    echo "$ROOT/.local/uv/bin/uv"
}

find_python313() {
    local candidate
    if [ -n "${PYTHON313:-}" ]; then echo "$PYTHON313"; return; fi
    for candidate in python3.13 /usr/bin/python3.13 /usr/local/bin/python3.13; do
        if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null; then
            command -v "$candidate"; return
        fi
    done
    if command -v pyenv >/dev/null 2>&1; then
        for candidate in "$(pyenv root)"/versions/3.13*/bin/python3.13; do
            if [ -x "$candidate" ]; then echo "$candidate"; return; fi
        done
    fi
    return 1
}

install_with_apt() {
    # $1: the Debian package, $2: what it is; $3: what to do instead where apt-get cannot (not root, no apt).
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "bootstrap: installing $2 (apt-get)"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1") >&2
    else
        say "bootstrap: $3"
        exit 1
    fi
}

ensure_postgres() {
    # Only needed when no DATABASE_URL is given: a throwaway cluster is started from these binaries.
    if [ -n "${DATABASE_URL:-}" ] || command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
        return
    fi
    install_with_apt postgresql "PostgreSQL server binaries" \
        "PostgreSQL server binaries not found; install PostgreSQL or set DATABASE_URL"
}

ensure_pgbouncer() {
    # Only with LOCAL_PGBOUNCER=1: the throwaway cluster is put behind PgBouncer (local/pgbouncer.py).
    if [ "${LOCAL_PGBOUNCER:-}" != 1 ] || command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ]; then
        return
    fi
    install_with_apt pgbouncer PgBouncer "pgbouncer not found; install it (apt-get install pgbouncer) or unset LOCAL_PGBOUNCER"
}

UV="$(find_uv)"
PY313="$(find_python313)" || {
    say "bootstrap: Python 3.13 not found; asking uv to provide one"
    PY313="3.13"
}
# Keep pyenv shims from redirecting the interpreter uv found.
unset PYENV_VERSION
$UV sync --frozen --quiet --python "$PY313" >&2
ensure_postgres
ensure_pgbouncer
export PATH="$ROOT/.venv/bin:$PATH"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
