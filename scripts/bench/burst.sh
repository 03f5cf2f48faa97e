#!/usr/bin/env bash
# Does `customs up` keep up with a burst of pushes? Runs BenchmarkBurst
# (services/customs/bench_test.go) once per case and prints one table:
# for each SCANNERS × WORKERS, the burst without large images (BASELINE=1)
# and with LARGE large images mixed in.
#
#   scripts/bench/burst.sh
#   SCANNERS="1 2" WORKERS="2 8" scripts/bench/burst.sh
#   SMALL=50 LARGE=5 BASELINE=0 scripts/bench/burst.sh     # a quick look
#
# Environment:
#   SMALL=200      small images (Debian-like rootfs plus a unique file)
#   LARGE=20       large images, spread evenly through the push order
#   LARGE_MB=40    payload of each large image (half binaries, half source)
#   SCANNERS=1     scanner services on the one NATS (a list runs each)
#   WORKERS=0      Workers of each scanner, 0 = the default (a list runs each)
#   PUSHERS=8      concurrent pushing clients
#   BASELINE=1     also run each case with LARGE=0
#   KEEP=DIR       keep each case's go test output there
set -euo pipefail

# shellcheck source=scripts/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_root
SMALL=${SMALL:-200}
LARGE=${LARGE:-20}
LARGE_MB=${LARGE_MB:-40}
SCANNERS=${SCANNERS:-1}
WORKERS=${WORKERS:-0}
PUSHERS=${PUSHERS:-8}
BASELINE=${BASELINE:-1}

echo "load: $(uptime)"
echo "cpus: $(nproc)"

out=${KEEP:-$(mktemp -d "${TMPDIR:-/tmp}/customs-burst.XXXXXX")}
mkdir -p "$out"
[[ -n ${KEEP:-} ]] || trap 'rm -rf "$out"' EXIT

# Compiled once; each case is a run of the test binary.
(cd services/customs && go test -c -o "$out/customs.test" .)

larges=("$LARGE")
[[ $BASELINE != 1 || $LARGE -eq 0 ]] || larges=(0 "$LARGE")

rows=()
for s in $SCANNERS; do
	for w in $WORKERS; do
		for l in "${larges[@]}"; do
			name="s$s-w$w-l$l"
			echo "== scanners=$s workers=$w small=$SMALL large=$l (${LARGE_MB} MB) pushers=$PUSHERS: $(uptime | sed 's/.*load/load/')"
			(cd services/customs && CUSTOMS_BENCH_SMALL=$SMALL CUSTOMS_BENCH_LARGE=$l CUSTOMS_BENCH_LARGE_MB=$LARGE_MB \
				CUSTOMS_BENCH_SCANNERS=$s CUSTOMS_BENCH_WORKERS=$w CUSTOMS_BENCH_PUSHERS=$PUSHERS \
				"$out/customs.test" -test.run '^$' -test.bench '^BenchmarkBurst$' -test.benchtime 1x -test.timeout 30m) \
				>"$out/$name.txt" 2>&1 || {
				cat "$out/$name.txt" >&2
				exit 1
			}
			line=$(grep '^BenchmarkBurst' "$out/$name.txt")
			echo "$line"
			rows+=("$s $w $l $line")
		done
	done
done

# BenchmarkBurst reports "value unit" pairs; pick them by unit.
echo
echo "load: $(uptime)"
printf '%s\n' "${rows[@]}" | awk -v small="$SMALL" '
function m(unit,   i) { for (i = 8; i < NF; i++) if ($(i+1) == unit) return $i; return "-" }
BEGIN {
	printf "| scanners | workers | small | large | images/min | /core | /cpu-min | small p50 | small p95 | small after large p95 | large p50 | large p95 | webhook p95 | small scan p95 | large scan p95 | store p95 |\n"
	printf "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
}
{
	printf "| %s | %s | %s | %s | %.0f | %.0f | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, ($2 == 0 ? "default" : $2), small, $3,
		m("images/min"), m("images/min/core"), m("images/cpu-min"), m("small-p50-ms"), m("small-p95-ms"),
		m("small-after-large-p95-ms"), m("large-p50-ms"), m("large-p95-ms"), m("webhook-p95-ms"),
		m("small-scan-p95-ms"), m("large-scan-p95-ms"), m("store-p95-ms")
}'
echo "(latencies in ms, from the push returning; /core divides by GOMAXPROCS; /cpu-min is per CPU-minute of the whole test process)"
