#!/usr/bin/env bash
# Check that a refactor changed no report: build `customs` at BASE (a git
# revision) and at the working tree, scan the same image tarballs with both
# (`customs scan --input`, all detectors, same vulnerability database if
# CUSTOMS_DB points at one), and diff the reports with the fields that
# differ between any two runs removed (times, scanner version).
#
#   scripts/bench/same-reports.sh BASE [IMAGE.tar ...]
#
# Without images it uses the benchmark images (debian-12.tar, polyglot.tar
# under BENCH_CACHE, built by debian-image.sh / polyglot-image.sh when
# missing). Exit 0 when every report is identical, 1 otherwise (the diff is
# printed). Needs jq.
set -euo pipefail

# shellcheck source=scripts/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_root

if [[ $# -lt 1 ]]; then
	echo "usage: $0 BASE [IMAGE.tar ...]" >&2
	exit 2
fi
BASE=$1
shift
BENCH_CACHE=${BENCH_CACHE:-$HOME/.cache/customs-bench}
images=("$@")
if [[ ${#images[@]} -eq 0 ]]; then
	mkdir -p "$BENCH_CACHE"
	[[ -s $BENCH_CACHE/debian-12.tar ]] || scripts/bench/debian-image.sh "$BENCH_CACHE/debian-12.tar"
	[[ -s $BENCH_CACHE/polyglot.tar ]] || scripts/bench/polyglot-image.sh "$BENCH_CACHE/polyglot.tar"
	images=("$BENCH_CACHE/debian-12.tar" "$BENCH_CACHE/polyglot.tar")
fi
command -v jq >/dev/null || { echo "same-reports: needs jq" >&2; exit 2; }

work=$(mktemp -d)
cleanup() {
	git -C "$REPO_ROOT" worktree remove --force "$work/base" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

git worktree add --detach "$work/base" "$BASE" >/dev/null
(cd "$work/base" && go build -o "$work/customs-base" ./services/customs/cmd/customs)
go build -o "$work/customs-head" ./services/customs/cmd/customs

# Fields that differ between two runs of the same binary on the same input.
normalize='walk(if type == "object" then del(.started_at, .finished_at, .matched_at, .requested_at) else . end)
  | (if type == "array" then .[] else . end) |= (.scanner.version = "")'

status=0
for img in "${images[@]}"; do
	name=$(basename "$img" .tar)
	for side in base head; do
		# A failed scan is a result too: its report goes to stdout, exit 1.
		"$work/customs-$side" scan --input "$img" >"$work/$name.$side.raw.json" 2>"$work/$name.$side.err" || true
		jq -S "$normalize" "$work/$name.$side.raw.json" >"$work/$name.$side.json"
	done
	if diff -u "$work/$name.base.json" "$work/$name.head.json" >"$work/$name.diff"; then
		echo "same: $name ($(jq '[.. | objects | select(has("purl"))] | length' "$work/$name.head.json") packages, verdict $(jq -r 'if type == "array" then .[-1].verdict else .verdict end' "$work/$name.head.json"))"
	else
		echo "DIFFERENT: $name"
		head -100 "$work/$name.diff"
		status=1
	fi
done
exit $status
