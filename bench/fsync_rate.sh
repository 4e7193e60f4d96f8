#!/usr/bin/env bash
# The fsync rate of the disk under a folder: 4 KiB overwritten in place and fsync'd, in a loop,
# for a few seconds (python3), and the same with dd's oflag=dsync as a cross-check.
#
#   bench/fsync_rate.sh [FOLDER] [SECONDS]     (default: $CLIPCART_BENCH_TMP or /var/tmp, 5 s)
set -euo pipefail
dir="${1:-${CLIPCART_BENCH_TMP:-/var/tmp}}"
secs="${2:-5}"
probe="$(mktemp "$dir/fsync-probe.XXXXXX")"
trap 'rm -f "$probe"' EXIT
python3 - "$probe" "$secs" <<'PY'
import os, sys, time
path, secs = sys.argv[1], float(sys.argv[2])
fd = os.open(path, os.O_WRONLY)
block = b"x" * 4096
n, start = 0, time.monotonic()
while time.monotonic() - start < secs:
    os.pwrite(fd, block, 0)
    os.fsync(fd)
    n += 1
elapsed = time.monotonic() - start
os.close(fd)
print(f"python os.fsync: {n / elapsed:.0f} fsyncs/s ({n} in {elapsed:.1f} s, 4 KiB pwrite + fsync)")
PY
count=2000
start=$(date +%s.%N)
dd if=/dev/zero of="$probe" bs=4k count="$count" oflag=dsync conv=notrunc status=none
end=$(date +%s.%N)
awk -v n="$count" -v s="$start" -v e="$end" \
  'BEGIN {printf "dd oflag=dsync: %.0f writes/s (%d × 4 KiB in %.1f s)\n", n / (e - s), n, e - s}'
