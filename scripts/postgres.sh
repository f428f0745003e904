#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests, the benchmarks and trying a multi-process crawl on
# one machine: its own cluster in a folder of the checkout, its own port, loopback only.
#
#   bash scripts/postgres.sh start     initialise once (kept for reuse), start, create the role
#   bash scripts/postgres.sh stop      stop it (fine when it is not running)
#   bash scripts/postgres.sh restart [fast|immediate]   immediate = a crash, for recovery tests
#   bash scripts/postgres.sh status    exit 0 when running, 3 when not, 4 when not installed
#   bash scripts/postgres.sh dsn       print postgresql://crawler:PASSWORD@127.0.0.1:PORT/crawler
#
# Environment: SPOTIFY_CRAWLER_PG_PORT (default 54329), SPOTIFY_CRAWLER_PG_DIR (default .pg in
# the checkout, or a folder in /var/tmp where the server's user cannot reach the checkout;
# delete it to start from nothing). The server binaries come from Debian's
# postgresql package (installed with apt-get when missing) or, where apt is not available, from
# the pgserver wheel. As root the server runs as the `postgres` user, since initdb refuses root.
#
# Durability: fsync is off (the cluster is disposable), synchronous_commit stays on, so a killed
# server or a `restart immediate` loses no committed transaction; only a machine crash could.
set -euo pipefail
cd "$(dirname "$0")/.."

port="${SPOTIFY_CRAWLER_PG_PORT:-54329}"
root="$(realpath -m "${SPOTIFY_CRAWLER_PG_DIR:-.pg}")"
if [ -z "${SPOTIFY_CRAWLER_PG_DIR:-}" ] && [ "$(id -u)" -eq 0 ] && id postgres >/dev/null 2>&1 &&
    ! runuser -u postgres -- test -x "$PWD"; then
    # The server's user cannot reach this checkout (one under /root, say): the cluster goes
    # where it can, one folder per checkout.
    root="/var/tmp/spotify-crawler-pg-$(printf %s "$PWD" | sha256sum | cut -c1-12)"
fi
data="$root/data"
log="$data/server.log"
secret="$root/password"
wheel="$root/pgserver/pgserver"
role=crawler
database=crawler

die() {
    echo "postgres.sh: $*" >&2
    exit 1
}

# The server's OS user: the caller, or `postgres` when the caller is root.
as_server() {
    if [ "$(id -u)" -eq 0 ]; then
        (cd / && runuser -u postgres -- "$@")  # from a folder it may enter: paths are absolute
    else
        "$@"
    fi
}

find_bin() {
    local candidate
    for candidate in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV) "$wheel/pginstall/bin"; do
        if [ -x "$candidate/pg_ctl" ]; then
            echo "$candidate"
            return
        fi
    done
}

install_server() {
    if command -v apt-get >/dev/null && [ "$(id -u)" -eq 0 ]; then
        echo "postgres.sh: installing Debian's postgresql package" >&2
        # No default cluster on 5432: this script makes its own.
        mkdir -p /etc/postgresql-common
        if ! grep -qs '^create_main_cluster' /etc/postgresql-common/createcluster.conf; then
            echo "create_main_cluster = false" >>/etc/postgresql-common/createcluster.conf
        fi
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    else
        echo "postgres.sh: installing the pgserver wheel (no apt-get here)" >&2
        # Inside the cluster's folder, which the server's user can reach (a venv under /root
        # is not), and outside any environment PEP 668 protects.
        "${PYTHON:-python3}" -m pip install --quiet --no-deps --target "$root/pgserver" pgserver >&2
    fi
}

bin="$(find_bin)"

ensure_server_user() {
    [ "$(id -u)" -eq 0 ] || return 0
    if ! id postgres >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /usr/sbin/nologin postgres
    fi
}

running() {
    [ -n "$bin" ] && [ -f "$data/PG_VERSION" ] && as_server "$bin/pg_ctl" status -D "$data" >/dev/null 2>&1
}

# The port of the running server (postmaster.pid line 4), else the configured one.
current_port() {
    if running && [ -r "$data/postmaster.pid" ]; then
        sed -n 4p "$data/postmaster.pid"
    else
        echo "$port"
    fi
}

initialise() {
    ensure_server_user
    mkdir -p "$root"
    if [ ! -f "$secret" ]; then
        # URL-safe, so the DSN needs no escaping.
        (umask 077 && head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' >"$secret")
    fi
    [ -f "$data/PG_VERSION" ] && return 0
    rm -rf "$data"
    mkdir -m 700 "$data"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$data"
    if ! as_server test -w "$data"; then
        die "the postgres user cannot reach $data; set SPOTIFY_CRAWLER_PG_DIR to a folder it can"
    fi
    # Peer authentication on the socket (inside the data folder, so only the server's user), a
    # password over TCP.
    as_server "$bin/initdb" -D "$data" --auth-local=peer --auth-host=scram-sha-256 \
        --encoding=UTF8 --locale=C.UTF-8 >"$root/initdb.log" 2>&1 ||
        die "initdb failed, see $root/initdb.log"
    as_server tee -a "$data/postgresql.conf" >/dev/null <<EOF
# scripts/postgres.sh: a disposable test server.
listen_addresses = '127.0.0.1'
unix_socket_directories = '$data'
fsync = off
full_page_writes = off
synchronous_commit = on
max_connections = 200
shared_buffers = 256MB
max_wal_size = 4GB
EOF
}

# The test role (it may create the per-test databases) and its database; the password is sent
# on stdin so it is never on a command line.
provision() {
    local sql
    sql="$(
        cat <<EOF
SELECT format('CREATE ROLE %I LOGIN CREATEDB', '$role')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$role') \\gexec
ALTER ROLE $role PASSWORD '$(cat "$secret")';
SELECT format('CREATE DATABASE %I OWNER %I', '$database', '$role')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$database') \\gexec
EOF
    )"
    as_server "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$data" -p "$(current_port)" -d postgres \
        >/dev/null <<<"$sql" || die "could not create the role $role and database $database"
}

start() {
    if [ -z "$bin" ]; then
        install_server
        bin="$(find_bin)"
        [ -n "$bin" ] || die "no PostgreSQL server binaries found after installing"
    fi
    initialise
    if ! running; then
        if ! as_server "$bin/pg_ctl" start -D "$data" -l "$log" -w -t 60 -o "-p $port" >/dev/null 2>&1; then
            local why
            why="$(grep -h 'FATAL' "$log" 2>/dev/null | tail -n 1 | sed 's/.*FATAL: *//')"
            die "the server did not start on port $port (${why:-see $log}); if another server" \
                "has that port, set SPOTIFY_CRAWLER_PG_PORT"
        fi
    fi
    provision
    echo "postgres.sh: running on 127.0.0.1:$(current_port) (data in $data)" >&2
}

stop() {
    if running; then
        as_server "$bin/pg_ctl" stop -D "$data" -m fast -w -t 60 >/dev/null
        echo "postgres.sh: stopped" >&2
    else
        echo "postgres.sh: not running" >&2
    fi
}

case "${1:-}" in
start) start ;;
stop) stop ;;
restart)
    mode="${2:-fast}"
    [ "$mode" = fast ] || [ "$mode" = immediate ] || die "restart mode must be fast or immediate"
    running || die "not running"
    p="$(current_port)"
    as_server "$bin/pg_ctl" stop -D "$data" -m "$mode" -w -t 60 >/dev/null
    port="$p"
    start
    ;;
status)
    if [ -z "$bin" ]; then
        echo "not installed"
        exit 4
    elif running; then
        echo "running on 127.0.0.1:$(current_port) (pid $(head -n 1 "$data/postmaster.pid"), data in $data)"
    else
        echo "not running"
        exit 3
    fi
    ;;
dsn)
    [ -f "$secret" ] || die "no server initialised in $root: run 'bash scripts/postgres.sh start'"
    echo "postgresql://$role:$(cat "$secret")@127.0.0.1:$(current_port)/$database"
    ;;
*)
    echo "usage: bash scripts/postgres.sh start|stop|restart [fast|immediate]|status|dsn" >&2
    exit 2
    ;;
esac
