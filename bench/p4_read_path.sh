#!/usr/bin/env bash
# P4, the read path: product page req/s ÷ the bench-only baseline route's req/s, which runs the
# same queries and sends the same bytes without middleware, session handling or templates.
# See bench/README.md. Loopback only. Bounded: per backend about
# (2 + 2 × runs) × duration for the anonymous viewer and (3 + 3 × runs) × duration for the buyer.
#
#   bench/p4_read_path.sh [--duration S] [--connections N] [--threads N] [--runs N]
#                         [--backends "sqlite postgres"] [--viewers "anonymous buyer"]
#                         [--no-build] [--out FILE.tsv]
#
# PostgreSQL: CLIPCART_BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres)
# names a server where a scratch database may be created; it is dropped at the end (skipped with
# a note when unreachable). The server logs as configured by CLIPCART_LOG (default info: one
# access-log line per request, written to a file beside the data folder).
set -euo pipefail
# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
COMMAND_LINE="$0${*:+ $*}"

DURATION=10
CONNECTIONS=32
THREADS=1
RUNS=3
WARMUP=3
BACKENDS="sqlite postgres"
VIEWERS="anonymous buyer"
BUILD=1
OUT=""
while (($#)); do
  case "$1" in
    --duration) DURATION="$2"; shift 2 ;;
    --connections) CONNECTIONS="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --runs) RUNS="$2"; shift 2 ;;
    --backends) BACKENDS="$2"; shift 2 ;;
    --viewers) VIEWERS="$2"; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --out) OUT="$2"; shift 2 ;;
    -h | --help) sed -n '2,15p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done

prepare_run
RAW="$WORK/raw.tsv"
printf 'backend\tscenario\trun\troute\treq_per_s\tp50_ms\tp99_ms\tmax_ms\terrors\tnon_2xx\tcpu_us_per_req\tloadavg\n' >"$RAW"
SIZES="$WORK/sizes.tsv"
: >"$SIZES"

LUA="$ROOT/bench/wrk_report.lua"
TICK_US=$((1000000 / $(getconf CLK_TCK)))

# route_url BASE ROUTE ID: the product page, or one of the baselines of src/platform/bench.rs.
route_url() {
  case "$2" in
    page) echo "$1/products/$3" ;;
    *) echo "$1/__bench/$2/products/$3" ;;
  esac
}

# check_same COOKIE LABEL URL... : every URL answers 200 with exactly the first one's body.
check_same() {
  local cookie="$1" label="$2" first="$3" url status
  shift 2
  for url in "$@"; do
    status=$(curl -sS -o "$WORK/body" -D "$WORK/head" -w '%{http_code}' -H "Cookie: $cookie" "$url")
    [[ "$status" == 200 ]] || die "$label: $url answered $status"
    if [[ "$url" == "$first" ]]; then
      cp "$WORK/body" "$WORK/page.html"
      if [[ "$label" == */buyer ]]; then
        grep -q 'id="signout"' "$WORK/page.html" || die "$label: the page does not show a signed-in buyer"
      fi
    else
      cmp -s "$WORK/page.html" "$WORK/body" || die "$label: $url sends other bytes than the product page"
    fi
    printf '%s\t%s\tbody %s bytes\theaders %s bytes\n' "$label" "/${url#http://*/}" \
      "$(wc -c <"$WORK/body")" "$(wc -c <"$WORK/head")" >>"$SIZES"
  done
}

# one_run URL COOKIE -> "req_per_s p50_ms p99_ms max_ms errors non_2xx cpu_us_per_req"
one_run() {
  local line t0 t1
  t0=$(cpu_ticks "$SERVER_PID")
  line=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" -H "Cookie: $2" -s "$LUA" "$1" | grep '^RESULT') ||
    die "wrk gave no result for $1"
  t1=$(cpu_ticks "$SERVER_PID")
  # RESULT requests duration_us req_per_s p50_us p99_us max_us errors non_2xx bytes
  awk -v cpu=$(((t1 - t0) * TICK_US)) \
    '{printf "%s %.3f %.3f %.3f %s %s %.1f\n", $4, $5/1000, $6/1000, $7/1000, $8, $9, cpu/$2}' <<<"$line"
}

run_backend() {
  local backend="$1" port base datadir id viewer cookie session run route url r n k
  port=$(free_port)
  base="http://127.0.0.1:$port"
  datadir="$WORK/$backend"
  mkdir -p "$datadir"
  local -a env=(CLIPCART_BENCH_ROUTES=1)
  if [[ "$backend" == postgres ]]; then
    create_pg_db "clipcart_bench_p4_$$"
    env+=("CLIPCART_DATABASE_URL=$PG_URL")
  fi
  log "$backend: starting clipcart demo on $base"
  start_server "$WORK/$backend.log" "${env[@]}" -- demo --data-dir "$datadir" --bind "127.0.0.1:$port"
  wait_ready "$base"
  id=$(bench_product_id "$base")
  log "$backend: product $id"
  session=""
  for viewer in $VIEWERS; do
    local -a routes=()
    case "$viewer" in
      anonymous)
        # A returning visitor: has the CSRF cookie, no session.
        cookie="$BENCH_CSRF_COOKIE"
        routes=(page baseline)
        ;;
      buyer)
        [[ -n "$session" ]] || session=$(sign_in "$base")
        [[ -n "$session" ]] || die "signing in the demo buyer failed"
        cookie="$BENCH_CSRF_COOKIE; __Host-clipcart_session=$session"
        routes=(page baseline-session baseline)
        ;;
      *) die "unknown viewer $viewer (anonymous, buyer)" ;;
    esac
    local -a urls=()
    for route in "${routes[@]}"; do
      urls+=("$(route_url "$base" "$route" "$id")")
    done
    check_same "$cookie" "$backend/$viewer" "${urls[@]}"
    for url in "${urls[@]}"; do
      wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" -H "Cookie: $cookie" "$url" >/dev/null
    done
    n=${#routes[@]}
    for ((run = 1; run <= RUNS; run++)); do
      # Rotate which route goes first, so a drift in the machine's load falls on all of them.
      for ((k = 0; k < n; k++)); do
        route="${routes[$(((k + run - 1) % n))]}"
        r=$(one_run "$(route_url "$base" "$route" "$id")" "$cookie")
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$backend" "$viewer" "$run" "$route" "$(tr ' ' '\t' <<<"$r")" \
          "$(cut -d' ' -f1 /proc/loadavg)" >>"$RAW"
        log "$backend/$viewer run $run $route: $r"
      done
    done
  done
  stop_server "$SERVER_PID"
}

for backend in $BACKENDS; do
  if [[ "$backend" == postgres ]] && ! pg_reachable; then
    log "postgres: $PG_ADMIN_URL is unreachable; skipped"
    continue
  fi
  run_backend "$backend"
done

echo
echo "## P4 read path ($(date -u +%Y-%m-%dT%H:%MZ))"
machine_summary "$COMMAND_LINE"
echo "wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}'): -t$THREADS -c$CONNECTIONS -d${DURATION}s, warm-up ${WARMUP}s per route, $RUNS rotated runs; CLIPCART_LOG=${CLIPCART_LOG:-unset (info)}"
echo
echo "Responses checked before the runs (bodies identical; the page's headers carry the security headers):"
sed 's/^/  /' "$SIZES"
echo
echo "Raw runs (cpu_us_per_req: the clipcart process's user+system CPU over the run ÷ requests):"
column -t -s $'\t' "$RAW" | sed 's/^/  /'
echo
status=0
python3 "$ROOT/bench/p4_summary.py" "$RAW" || status=$?
if [[ -n "$OUT" ]]; then
  cp "$RAW" "$OUT"
  log "raw runs written to $OUT"
fi
exit "$status"
