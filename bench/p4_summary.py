"""Summarises the raw runs of bench/p4_read_path.sh (a TSV file) as a Markdown table.

Each goal is a ratio measured within one run (page req/s ÷ baseline req/s, both routes measured
back to back in the same run); the table gives each run's ratio and their median, and the median
req/s, p99 and server CPU per request of each route.
"""

import csv
import statistics
import sys


def main(path: str) -> int:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["backend"], r["scenario"]), {}).setdefault(int(r["run"]), {})[
            r["route"]
        ] = r
    print(
        "| backend | viewer | baseline | page req/s | baseline req/s | page p99 ms | "
        "baseline p99 ms | page CPU µs/req | baseline CPU µs/req | ratio per run | "
        "ratio (median) | goal ≥ 0.7 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (backend, scenario), runs in groups.items():
        baselines = sorted(
            {route for v in runs.values() for route in v if route != "page"},
            key=lambda b: b != "baseline-session",
        )
        for b in baselines:
            pairs = [v for v in runs.values() if "page" in v and b in v]

            def med(route: str, key: str) -> float:
                return statistics.median(float(p[route][key]) for p in pairs)

            ratios = [float(p["page"]["req_per_s"]) / float(p[b]["req_per_s"]) for p in pairs]
            ratio = statistics.median(ratios)
            print(
                f"| {backend} | {scenario} | {b} | {med('page', 'req_per_s'):.0f} | "
                f"{med(b, 'req_per_s'):.0f} | {med('page', 'p99_ms'):.2f} | {med(b, 'p99_ms'):.2f} | "
                f"{med('page', 'cpu_us_per_req'):.0f} | {med(b, 'cpu_us_per_req'):.0f} | "
                f"{', '.join(f'{x:.3f}' for x in ratios)} | {ratio:.3f} | "
                f"{'met' if ratio >= 0.7 else 'MISSED'} |"
            )
    bad = [r for r in rows if r["errors"] != "0" or r["non_2xx"] != "0"]
    if bad:
        print(f"\nWARNING: {len(bad)} runs had socket errors or non-2xx answers")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
