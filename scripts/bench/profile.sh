#!/usr/bin/env bash
# CPU and allocation profiles of a full scan (every detector) of the images
# of BenchmarkScanImage (pkg/inspect/bench_test.go): debian:12 built from the
# host's Debian files (1 layer, ~115 MB of files) and the large application
# image (5 layers, ~400 MB of files). Prints the top entries of each profile.
#
#   scripts/bench/profile.sh                    # both images
#   IMAGES=debian scripts/bench/profile.sh      # one of them (debian|application)
#   BENCHTIME=3x TOP=25 OUT=/tmp/prof scripts/bench/profile.sh
#
# The images are built in memory by the benchmark (tar + gzip of host
# files), which would dominate the profile; the reports therefore ignore
# the builder's stacks and the engine's construction (once per process:
# rule compilation is goal 4 of issue 13, not the scan's cost). Ignoring
# rather than focusing: layer walks run on their own goroutines, so a
# focus on (*scan.Scanner).Image would miss them. The profiles and the
# test binary stay in OUT (default: a temporary directory, printed) for
# `go tool pprof -http` or `-list`.
#
# Environment:
#   IMAGES=debian application   which sub-benchmarks
#   DETECTORS=all               all | no-secrets | secrets-only | misconfig-only
#   BENCHTIME=2x                iterations per image (more: steadier shares)
#   TOP=15                      entries printed per report
#   OUT=DIR                     keep profiles there
set -euo pipefail

# shellcheck source=scripts/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_root
IMAGES=${IMAGES:-debian application}
DETECTORS=${DETECTORS:-all}
BENCHTIME=${BENCHTIME:-2x}
TOP=${TOP:-15}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/customs-profile.XXXXXX")}
mkdir -p "$OUT"

echo "# $(uptime)"
echo "# nproc $(nproc), $(go version), $(git -C "$REPO_ROOT" rev-parse --short HEAD)$(git -C "$REPO_ROOT" diff --quiet || echo '+dirty')"
echo "# profiles in $OUT"

(cd pkg && go test -c -o "$OUT/inspect.test" ./inspect/)

ignore='inspect_test\.(benchImages|debianLayers|imageOf)|inspect\.NewEngine|scantest\.|testing\.tRunner'
for im in $IMAGES; do
	echo
	echo "## $im/$DETECTORS"
	(cd "$OUT" && ./inspect.test -test.run '^$' -test.bench "ScanImage/$im/$DETECTORS\$" \
		-test.benchtime "$BENCHTIME" -test.benchmem \
		-test.cpuprofile "$OUT/$im.cpu.pprof" -test.memprofile "$OUT/$im.mem.pprof" -test.memprofilerate 65536) |
		grep -E '^(Benchmark|\s+bench_test)' || true
	echo
	echo "### CPU, flat (scanning only)"
	go tool pprof -top -nodecount "$TOP" -ignore "$ignore" "$OUT/inspect.test" "$OUT/$im.cpu.pprof" 2>/dev/null | sed -n '/flat%/,$p'
	echo
	echo "### CPU, cumulative"
	go tool pprof -top -cum -nodecount "$TOP" -ignore "$ignore" "$OUT/inspect.test" "$OUT/$im.cpu.pprof" 2>/dev/null | sed -n '/flat%/,$p'
	echo
	echo "### allocated bytes"
	go tool pprof -top -sample_index alloc_space -nodecount "$TOP" -ignore "$ignore" "$OUT/inspect.test" "$OUT/$im.mem.pprof" 2>/dev/null | sed -n '/flat%/,$p'
done
