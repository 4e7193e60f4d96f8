# Helpers shared by the benchmark scripts in bench/ (sourced, not run). Loopback only.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${CLIPCART_BENCH_BIN:-$ROOT/target/release/clipcart}"
# A 32-character alphanumeric value: the CSRF layer accepts it as an existing CSRF cookie.
BENCH_CSRF="benchcsrf0benchcsrf0benchcsrf012"
BENCH_CSRF_COOKIE="__Host-clipcart_csrf=$BENCH_CSRF"
# Where data folders go: a real disk (the fsync rate is measured there too), not tmpfs.
BENCH_TMP_PARENT="${CLIPCART_BENCH_TMP:-/var/tmp}"
PG_ADMIN_URL="${CLIPCART_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

SERVER_PIDS=()
PG_DBS=()
WORK=""

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is missing: $2"
}

build_release() {
  log "building: cargo build --release -p clipcart"
  (cd "$ROOT" && cargo build --release -p clipcart) >&2
}

make_workdir() {
  mkdir -p "$BENCH_TMP_PARENT"
  WORK="$(mktemp -d "$BENCH_TMP_PARENT/clipcart-bench.XXXXXX")"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_server LOGFILE [NAME=VALUE...] -- ARGS... : starts the release binary in the background
# with those variables set (env execs it, so the pid is the server's); sets SERVER_PID.
start_server() {
  local logfile="$1"
  shift
  local -a vars=()
  while (($#)) && [[ "$1" != -- ]]; do
    vars+=("$1")
    shift
  done
  shift
  env "${vars[@]}" "$BIN" "$@" >"$logfile" 2>&1 &
  SERVER_PID=$!
  SERVER_PIDS+=("$SERVER_PID")
}

# wait_ready BASE_URL [SECONDS]
wait_ready() {
  local base="$1" limit="${2:-60}" i
  for ((i = 0; i < limit * 20; i++)); do
    if curl -fsS -o /dev/null "$base/readyz" 2>/dev/null; then
      return 0
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || die "the server exited during start-up"
    sleep 0.05
  done
  die "$base/readyz did not answer 200 within ${limit}s"
}

stop_server() {
  local pid="$1" i p
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  local -a left=()
  for p in "${SERVER_PIDS[@]+"${SERVER_PIDS[@]}"}"; do
    [[ "$p" == "$pid" ]] || left+=("$p")
  done
  SERVER_PIDS=("${left[@]+"${left[@]}"}")
}

# The demo product with the most variants (the largest product page: "Linen overshirt", 4
# variants), from the public API; the same product in every run.
bench_product_id() {
  curl -fsS "$1/api/v1/products" |
    python3 -c 'import json,sys; items=json.load(sys.stdin)["items"]; print(max(items, key=lambda p: (p["variant_count"], p["title"]))["id"])'
}

# sign_in BASE -> prints the demo buyer's session cookie value (a real sign-in through the form)
sign_in() {
  curl -fsS -o /dev/null -D - -b "$BENCH_CSRF_COOKIE" \
    --data-urlencode "csrf=$BENCH_CSRF" \
    --data-urlencode "email=buyer@demo.clipcart.test" \
    --data-urlencode "password=demo-orange-kite-2026" \
    --data-urlencode "next=/" "$1/signin" |
    tr -d '\r' | sed -n 's/^set-cookie: __Host-clipcart_session=\([^;]*\);.*/\1/Ip' | head -1
}

pg_reachable() {
  command -v psql >/dev/null 2>&1 && psql "$PG_ADMIN_URL" -Atqc 'SELECT 1' >/dev/null 2>&1
}

# create_pg_db NAME: creates a scratch database, dropped by cleanup; sets PG_URL to its URL.
# (Not called in $(...): the list of databases to drop must be kept in this shell.)
create_pg_db() {
  psql "$PG_ADMIN_URL" -qc "CREATE DATABASE $1" >/dev/null
  PG_DBS+=("$1")
  PG_URL="${PG_ADMIN_URL%/*}/$1"
}

cleanup() {
  local pid db
  for pid in "${SERVER_PIDS[@]+"${SERVER_PIDS[@]}"}"; do
    stop_server "$pid"
  done
  for db in "${PG_DBS[@]+"${PG_DBS[@]}"}"; do
    psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
  done
  if [[ -n "$WORK" && -d "$WORK" && -z "${KEEP_WORK:-}" ]]; then
    rm -rf "$WORK"
  fi
}

# cpu_ticks PID -> user + system CPU time of the process so far, in clock ticks
cpu_ticks() {
  awk '{print $14 + $15}' "/proc/$1/stat"
}

# median of the numbers given as arguments
median() {
  printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'
}

# machine_summary COMMAND_LINE: what a result needs beside it (docs/benchmarks.md).
machine_summary() {
  echo "command: $1"
  echo "nproc: $(nproc); kernel: $(uname -r); cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  local lss sqlite
  lss=$(sed -n '/^name = "libsqlite3-sys"/{n;s/version = //p}' "$ROOT/Cargo.lock" | tr -d '"')
  sqlite=$(grep -hm1 '#define SQLITE_VERSION ' "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"libsqlite3-sys-$lss"/sqlite3/sqlite3.h 2>/dev/null |
    awk '{print $3}' | tr -d '"')
  echo "rustc: $(rustc --version); libsqlite3-sys $lss (bundled SQLite ${sqlite:-?})"
  echo "clipcart: $("$BIN" --version) at $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' + uncommitted changes')"
  if pg_reachable; then
    echo "postgresql: $(psql "$PG_ADMIN_URL" -Atqc 'SHOW server_version')"
  fi
  echo "disk under $BENCH_TMP_PARENT ($(findmnt -no SOURCE,FSTYPE -T "$BENCH_TMP_PARENT" 2>/dev/null)):"
  bash "$ROOT/bench/fsync_rate.sh" "$BENCH_TMP_PARENT" 5 | sed 's/^/  /'
}

# prepare_run: tools present, clean-up on exit, the release binary (unless BUILD=0), a work dir.
prepare_run() {
  need wrk "install it with: apt-get install -y wrk"
  need curl "install it with: apt-get install -y curl"
  need python3 "install it with: apt-get install -y python3"
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  if ((BUILD)); then build_release; fi
  [[ -x "$BIN" ]] || die "$BIN is missing: build it or drop --no-build"
  make_workdir
}
