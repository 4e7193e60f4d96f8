#!/usr/bin/env bash
# P7, footprint: start-up to ready time and resident memory (VmRSS) of the clipcart process, on
# the demo data set. See bench/README.md. Loopback only. Bounded: each run is two start-ups
# (≤ 60 s each, typically well under 1 s), 2 × idle seconds and one load of duration seconds.
#
#   bench/p7_footprint.sh [--runs N] [--idle S] [--duration S] [--connections N]
#                         [--backends "sqlite postgres"] [--no-build] [--out FILE.tsv]
#
# Each run, per backend:
#   1. first start: `clipcart demo` on an empty database (migrations + demo data), timed from
#      spawn to the first 200 from /readyz; VmRSS after --idle seconds; stopped;
#   2. restart: `clipcart serve` on the same data, timed the same way; VmRSS after --idle
#      seconds; then the P4 load (wrk on the anonymous product page) and VmRSS right after it;
#      then 4 sign-ins at once (argon2id, 19 MiB each) and VmRSS after --idle seconds, plus the
#      peak (VmHWM) over the process's life.
set -euo pipefail
# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
COMMAND_LINE="$0${*:+ $*}"

RUNS=3
IDLE=5
DURATION=10
CONNECTIONS=32
BACKENDS="sqlite postgres"
BUILD=1
OUT=""
while (($#)); do
  case "$1" in
    --runs) RUNS="$2"; shift 2 ;;
    --idle) IDLE="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --connections) CONNECTIONS="$2"; shift 2 ;;
    --backends) BACKENDS="$2"; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --out) OUT="$2"; shift 2 ;;
    -h | --help) sed -n '2,15p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done

prepare_run
RAW="$WORK/raw.tsv"
printf 'backend\trun\tfirst_start_ms\tfirst_idle_rss_mb\trestart_ms\tidle_rss_mb\tidle_rss_anon_mb\tload_req_per_s\trss_after_load_mb\tidle_rss_after_signins_mb\tpeak_rss_mb\n' >"$RAW"

# status_mb PID FIELD -> that /proc/PID/status field (kB) in MB
status_mb() {
  awk -v f="$2:" '$1 == f {printf "%.1f", $2 / 1024}' "/proc/$1/status"
}

# timed_start LOGFILE URL NAME=VALUE... -- ARGS... : sets SERVER_PID and READY_MS
timed_start() {
  local logfile="$1" url="$2" out
  shift 2
  local -a vars=()
  while [[ "$1" != -- ]]; do
    vars+=("$1")
    shift
  done
  shift
  out=$(python3 "$ROOT/bench/spawn_ready.py" "$logfile" "$url" 60 "${vars[@]+"${vars[@]}"}" -- "$BIN" "$@") ||
    die "start-up failed; see $logfile"
  SERVER_PID="${out%% *}"
  READY_MS="${out##* }"
  SERVER_PIDS+=("$SERVER_PID")
}

one_run() {
  local backend="$1" run="$2" port base datadir first idle1 restart idle2 anon2 load after signed peak line i
  port=$(free_port)
  base="http://127.0.0.1:$port"
  datadir="$WORK/$backend-$run"
  mkdir -p "$datadir"
  local -a env=()
  if [[ "$backend" == postgres ]]; then
    create_pg_db "clipcart_bench_p7_$$_$run"
    env+=("CLIPCART_DATABASE_URL=$PG_URL")
  fi

  timed_start "$datadir/first.log" "$base" "${env[@]+"${env[@]}"}" -- demo --data-dir "$datadir" --bind "127.0.0.1:$port"
  first="$READY_MS"
  sleep "$IDLE"
  idle1=$(status_mb "$SERVER_PID" VmRSS)
  stop_server "$SERVER_PID"

  timed_start "$datadir/restart.log" "$base" "${env[@]+"${env[@]}"}" -- serve --data-dir "$datadir" --bind "127.0.0.1:$port"
  restart="$READY_MS"
  sleep "$IDLE"
  idle2=$(status_mb "$SERVER_PID" VmRSS)
  anon2=$(status_mb "$SERVER_PID" RssAnon)
  line=$(wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" -H "Cookie: __Host-clipcart_csrf=$BENCH_CSRF" \
    -s "$ROOT/bench/wrk_report.lua" "$base/products/$(bench_product_id "$base")" | grep '^RESULT') ||
    die "wrk gave no result"
  after=$(status_mb "$SERVER_PID" VmRSS)
  for ((i = 0; i < 4; i++)); do
    sign_in "$base" >"$datadir/session.$i" &
  done
  wait
  for ((i = 0; i < 4; i++)); do
    [[ -s "$datadir/session.$i" ]] || die "sign-in $i of the demo buyer failed (throttled?)"
  done
  sleep "$IDLE"
  signed=$(status_mb "$SERVER_PID" VmRSS)
  peak=$(status_mb "$SERVER_PID" VmHWM)
  load=$(awk '{print $4}' <<<"$line")
  stop_server "$SERVER_PID"

  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$backend" "$run" "$first" "$idle1" "$restart" \
    "$idle2" "$anon2" "$load" "$after" "$signed" "$peak" >>"$RAW"
  log "$backend run $run: first start ${first} ms (idle ${idle1} MB), restart ${restart} ms (idle ${idle2} MB), after load ${after} MB (${load} req/s), idle after sign-ins ${signed} MB, peak ${peak} MB"
}

for backend in $BACKENDS; do
  if [[ "$backend" == postgres ]] && ! pg_reachable; then
    log "postgres: $PG_ADMIN_URL is unreachable; skipped"
    continue
  fi
  for ((run = 1; run <= RUNS; run++)); do
    one_run "$backend" "$run"
  done
done

echo
echo "## P7 footprint ($(date -u +%Y-%m-%dT%H:%MZ))"
machine_summary "$COMMAND_LINE"
echo "idle ${IDLE}s before each RSS reading; load: wrk -t1 -c$CONNECTIONS -d${DURATION}s on the anonymous product page; CLIPCART_LOG=${CLIPCART_LOG:-unset (info)}"
echo
echo "Raw runs (times from spawn to the first 200 from /readyz; RSS from /proc/PID/status, MB = MiB):"
column -t -s $'\t' "$RAW" | sed 's/^/  /'
echo
echo "| backend | first start ms | restart ms (goal ≤ 1000) | idle RSS after restart MB (goal ≤ 60) | RSS after P4 load MB | idle RSS after 4 sign-ins MB | idle RSS after first start (demo seeding) MB | peak RSS MB |"
echo "|---|---|---|---|---|---|---|---|"
for backend in $BACKENDS; do
  col() { awk -F'\t' -v b="$backend" -v c="$1" 'NR > 1 && $1 == b {print $c}' "$RAW"; }
  [[ -n "$(col 1)" ]] || continue
  # shellcheck disable=SC2046
  printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$backend" \
    "$(median $(col 3))" "$(median $(col 5))" "$(median $(col 6))" "$(median $(col 9))" \
    "$(median $(col 10))" "$(median $(col 4))" "$(median $(col 11))"
done
echo "(medians of $RUNS runs)"
if [[ -n "$OUT" ]]; then
  cp "$RAW" "$OUT"
  log "raw runs written to $OUT"
fi
