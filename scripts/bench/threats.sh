#!/usr/bin/env bash
# What the threat pass (malware signatures + secrets + misconfig) adds to a
# package-only scan of the same image, for Customs and for Trivy:
#
#   customs scan --scanners packages                vs  customs scan (all scanners)
#   trivy image --format cyclonedx (package SBOM)   vs  trivy image --scanners secret
#
#   scripts/bench/threats.sh [IMAGE.tar]
#
# IMAGE.tar defaults to $BENCH_CACHE/debian-12.tar (debian-image.sh builds it).
# Environment:
#   RUNS=3           runs per command (the median wall time is reported)
#   TRIVY=path       trivy binary (default: trivy on PATH, else $BENCH_CACHE/bin/trivy)
#   INSTALL_PEERS=1  install trivy v0.74.0 when missing (GOEXPERIMENT=jsonv2; a long compile)
# Trivy runs offline (--skip-db-update --offline-scan, its own cache dir):
# neither mode needs its vulnerability database.
set -euo pipefail

# shellcheck source=scripts/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_root
RUNS=${RUNS:-3}
IMAGE=${1:-$BENCH_CACHE/debian-12.tar}
[[ -s $IMAGE ]] || scripts/bench/debian-image.sh "$IMAGE"
bench_need_time

tmp=$(mktemp -d "${TMPDIR:-/tmp}/customs-threat-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/customs" ./services/customs/cmd/customs

TRIVY=${TRIVY:-}
if [[ -z $TRIVY ]]; then
	if command -v trivy >/dev/null; then
		TRIVY=$(command -v trivy)
	elif [[ -x $BENCH_CACHE/bin/trivy ]]; then
		TRIVY=$BENCH_CACHE/bin/trivy
	elif [[ ${INSTALL_PEERS:-0} == 1 ]]; then
		mkdir -p "$BENCH_CACHE/bin"
		GOEXPERIMENT=jsonv2 GOBIN="$BENCH_CACHE/bin" go install github.com/aquasecurity/trivy/cmd/trivy@v0.74.0
		TRIVY=$BENCH_CACHE/bin/trivy
	fi
fi

# measure NAME CMD...: median wall seconds and max peak RSS (MiB) over RUNS.
measure() {
	local name=$1; shift
	local walls=() rss=0
	for _ in $(seq "$RUNS"); do
		/usr/bin/time -v -o "$tmp/time" "$@" >"$tmp/out" 2>"$tmp/err" || { cat "$tmp/err" >&2; return 1; }
		walls+=("$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$tmp/time")")
		local r; r=$(awk -F': ' '/Maximum resident/ {print int($2/1024)}' "$tmp/time")
		(( r > rss )) && rss=$r
	done
	local median; median=$(printf '%s\n' "${walls[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
	printf '%-44s median %6.2f s   peak RSS %5d MiB   runs: %s\n' "$name" "$median" "$rss" "${walls[*]}"
}

echo "image: $IMAGE ($(du -m "$IMAGE" | cut -f1) MiB), load: $(cut -d' ' -f1-3 /proc/loadavg)"
measure "customs scan --scanners packages" "$tmp/customs" scan --scanners packages --input "$IMAGE"
measure "customs scan (packages+malware+secrets+misconfig)" "$tmp/customs" scan --input "$IMAGE"
echo "  findings: $(grep -c '"kind"' "$tmp/out" || true)"
if [[ -n $TRIVY ]]; then
	# Memory cache: every run analyzes the layers afresh, as Customs does.
	topts=(--input "$IMAGE" --skip-db-update --offline-scan --cache-backend memory --cache-dir "$tmp/trivy-cache" -q)
	measure "trivy image --format cyclonedx (packages)" "$TRIVY" image --format cyclonedx "${topts[@]}"
	measure "trivy image --scanners secret" "$TRIVY" image --scanners secret --format json "${topts[@]}"
	echo "  secrets: $(grep -c '"RuleID"' "$tmp/out" || true)"
else
	echo "trivy not found: set TRIVY=path or INSTALL_PEERS=1"
fi
