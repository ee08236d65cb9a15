# Shared by scripts/demo and scripts/test. Source it from the repository's top folder.

PYTHON="${PYTHON:-python3}"
VENV=".venv"
PG_URL_DEFAULT="postgres://postgres@127.0.0.1:5432/course_audit"

# ensure_venv [extra]: create .venv and install the project (with an extra) from
# pyproject.toml, again only when pyproject.toml changed since the last install.
ensure_venv() {
    local extra="${1:-}" spec="." stamp="$VENV/.install-stamp"
    if [ -n "$extra" ]; then spec=".[$extra]"; stamp="$stamp-$extra"; fi
    if ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
        echo "==> creating the virtualenv in $VENV"
        rm -rf "$VENV"
        "$PYTHON" -m venv "$VENV"
        rm -f "$VENV"/.install-stamp*
    fi
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        echo "==> installing $spec into $VENV"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$spec"
        touch "$stamp"
    fi
}

# ensure_postgres: start the local PostgreSQL cluster if it is not accepting connections.
ensure_postgres() {
    if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then return 0; fi
    echo "==> PostgreSQL is down; starting it"
    local version
    version="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)"
    if [ -z "$version" ]; then
        echo "PostgreSQL is not installed here (no /etc/postgresql)." >&2
        return 1
    fi
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
    for _ in $(seq 1 30); do
        if pg_isready -q -h 127.0.0.1 -p 5432; then return 0; fi
        sleep 1
    done
    echo "PostgreSQL did not come up on 127.0.0.1:5432." >&2
    return 1
}

# ensure_chromium: Debian's Chromium for the browser tests (never `playwright install`).
ensure_chromium() {
    if [ -x /usr/bin/chromium ]; then return 0; fi
    if [ "$(id -u)" != 0 ]; then
        echo "==> no /usr/bin/chromium and not root: browser tests will be skipped" >&2
        return 0
    fi
    echo "==> installing Debian's chromium for the browser tests"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
}

# ensure_pgbouncer: Debian's PgBouncer for the replication tests and load (scripts/replication).
ensure_pgbouncer() {
    if command -v pgbouncer >/dev/null 2>&1; then return 0; fi
    if [ "$(id -u)" != 0 ]; then
        echo "no pgbouncer and not root: install Debian's pgbouncer package" >&2
        return 1
    fi
    echo "==> installing Debian's pgbouncer for the replication tests"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null
}
