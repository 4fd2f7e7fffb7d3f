#!/usr/bin/env bash
# Real Redis and PostgreSQL for the inventory service's tests, on 127.0.0.1, without systemd.
#
#   scripts/test-services.sh start            install if missing, start, write the settings file
#   scripts/test-services.sh stop             stop both (the data of the test cluster is kept)
#   scripts/test-services.sh status           say what is running
#   scripts/test-services.sh env              print the settings file
#   scripts/test-services.sh postgres-stop    stop only the test PostgreSQL cluster (readiness tests)
#   scripts/test-services.sh postgres-start   start it again
#
# Nothing here touches a user's own services: Redis runs as its own daemon on port 6390 with its
# config, pidfile and log under the state directory, and PostgreSQL is a dedicated cluster
# (15/rollgate on port 5439) next to Debian's default 15/main, which stays as it is.
# The settings (hosts, ports, generated passwords) go to $STATE_DIR/services.env, which the
# tests read. Every step is idempotent: `start` twice leaves one of each running.
set -euo pipefail

STATE_DIR=${ROLLGATE_TEST_STATE_DIR:-/var/tmp/rollgate-test-services}
REDIS_PORT=${ROLLGATE_TEST_REDIS_PORT:-6390}
PG_VERSION=${ROLLGATE_TEST_PG_VERSION:-15}
PG_CLUSTER=${ROLLGATE_TEST_PG_CLUSTER:-rollgate}
PG_PORT=${ROLLGATE_TEST_PG_PORT:-5439}
DB_NAME=rollgate_test
DB_USER=rollgate_test
ENV_FILE="$STATE_DIR/services.env"

log() { printf 'test-services: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

require_root() {
    # apt-get, pg_ctlcluster and the postgres superuser need root; CI and the lab run as root.
    [ "$(id -u)" -eq 0 ] || die "run as root (it installs packages and manages a PostgreSQL cluster)"
}

# A secret generated once and kept, so that a second `start` keeps the same passwords.
secret() {
    local file="$STATE_DIR/$1"
    if [ ! -s "$file" ]; then
        (umask 077 && od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$file")
    fi
    cat "$file"
}

install_packages() {
    local missing=()
    command -v redis-server >/dev/null || missing+=(redis-server)
    [ -x "/usr/lib/postgresql/$PG_VERSION/bin/postgres" ] || missing+=("postgresql-$PG_VERSION")
    command -v pg_createcluster >/dev/null || missing+=(postgresql-common)
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing ${missing[*]}"
        apt-get update -qq
        env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

redis_cli() {
    REDISCLI_AUTH="$(secret redis.password)" redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"
}

redis_running() {
    [ "$(redis_cli ping 2>/dev/null)" = "PONG" ]
}

start_redis() {
    if redis_running; then
        log "redis already answering on 127.0.0.1:$REDIS_PORT"
        return
    fi
    local conf="$STATE_DIR/redis.conf"
    (umask 077 && cat >"$conf" <<EOF
bind 127.0.0.1
port $REDIS_PORT
requirepass $(secret redis.password)
daemonize yes
pidfile $STATE_DIR/redis.pid
logfile $STATE_DIR/redis.log
dir $STATE_DIR
save ""
appendonly no
EOF
    )
    redis-server "$conf"
    for _ in $(seq 50); do
        redis_running && { log "redis started on 127.0.0.1:$REDIS_PORT"; return; }
        sleep 0.1
    done
    die "redis did not answer on 127.0.0.1:$REDIS_PORT; see $STATE_DIR/redis.log"
}

stop_redis() {
    if redis_running; then
        redis_cli shutdown nosave >/dev/null 2>&1 || true
        log "redis stopped"
    fi
    rm -f "$STATE_DIR/redis.pid"
}

pg_cluster_exists() {
    pg_lsclusters -h 2>/dev/null | awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" '$1 == v && $2 == c {found = 1} END {exit !found}'
}

pg_cluster_online() {
    pg_lsclusters -h 2>/dev/null | awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" '$1 == v && $2 == c && $4 ~ /online/ {found = 1} END {exit !found}'
}

psql_admin() {
    runuser -u postgres -- psql -X -q -p "$PG_PORT" -v ON_ERROR_STOP=1 "$@"
}

start_postgres() {
    if ! pg_cluster_exists; then
        log "creating PostgreSQL cluster $PG_VERSION/$PG_CLUSTER on port $PG_PORT"
        # It listens on localhost only (the default). Durability settings are off: this cluster
        # only ever holds throw-away test data.
        pg_createcluster "$PG_VERSION" "$PG_CLUSTER" --port "$PG_PORT" --start-conf manual \
            -o fsync=off -o synchronous_commit=off \
            -o full_page_writes=off -o max_connections=200 >/dev/null
    fi
    if ! pg_cluster_online; then
        pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" start
        log "PostgreSQL $PG_VERSION/$PG_CLUSTER started on 127.0.0.1:$PG_PORT"
    else
        log "PostgreSQL $PG_VERSION/$PG_CLUSTER already online on port $PG_PORT"
    fi
    local password
    password=$(secret postgres.password)
    # CREATEDB: each test run works in a database of its own and drops it at the end.
    psql_admin -v user="$DB_USER" -v password="$password" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN CREATEDB', :'user')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'user') \gexec
ALTER ROLE :"user" WITH LOGIN CREATEDB PASSWORD :'password';
SQL
    psql_admin -v user="$DB_USER" -v db="$DB_NAME" <<'SQL'
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'user')
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') \gexec
SQL
}

stop_postgres() {
    if pg_cluster_online; then
        pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" stop -m fast
        log "PostgreSQL $PG_VERSION/$PG_CLUSTER stopped"
    fi
}

write_env_file() {
    (umask 077 && cat >"$ENV_FILE.tmp" <<EOF
# Written by scripts/test-services.sh; read by app/tests/conftest.py.
REDIS_HOST=127.0.0.1
REDIS_PORT=$REDIS_PORT
REDIS_PASSWORD=$(secret redis.password)
DB_HOST=127.0.0.1
DB_PORT=$PG_PORT
DB_DATABASE=$DB_NAME
DB_USERNAME=$DB_USER
DB_PASSWORD=$(secret postgres.password)
TEST_SERVICES_SCRIPT=$(readlink -f "$0")
EOF
    )
    mv "$ENV_FILE.tmp" "$ENV_FILE"
    log "settings written to $ENV_FILE"
}

main() {
    local command=${1:-}
    require_root
    case "$command" in
        start)
            install_packages
            mkdir -p "$STATE_DIR"
            chmod 700 "$STATE_DIR"
            start_redis
            start_postgres
            write_env_file
            ;;
        stop)
            [ -d "$STATE_DIR" ] || exit 0
            stop_redis
            stop_postgres
            ;;
        status)
            if redis_running; then echo "redis: running on 127.0.0.1:$REDIS_PORT"; else echo "redis: stopped"; fi
            if pg_cluster_online; then echo "postgresql: $PG_VERSION/$PG_CLUSTER online on 127.0.0.1:$PG_PORT"
            else echo "postgresql: $PG_VERSION/$PG_CLUSTER not running"; fi
            ;;
        env)
            [ -f "$ENV_FILE" ] || die "no $ENV_FILE: run '$0 start' first"
            cat "$ENV_FILE"
            ;;
        postgres-stop) stop_postgres ;;
        postgres-start)
            pg_cluster_exists || die "no cluster $PG_VERSION/$PG_CLUSTER: run '$0 start' first"
            pg_cluster_online || pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" start
            ;;
        *)
            echo "usage: $0 start|stop|status|env|postgres-stop|postgres-start" >&2
            exit 2
            ;;
    esac
}

main "$@"
