# shellcheck shell=bash
# shellcheck disable=SC2154,SC2034 # tmp is the caller's; what is set here is for the caller
# Shared pieces of the benchmark scripts in scripts/bench/. Sourced, not
# executed: each script keeps its own `set -euo pipefail` and then
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   bench_root
#
# Functions only (nothing runs on source), named bench_*. Some read or set
# the caller's globals, as the blocks they replace did: REPO_ROOT,
# BENCH_CACHE, IMAGE, OUT, CUSTOMS, CRANE, tmp (the script's scratch
# directory), WALL/CPU/RSS.

# Digits of the wall times bench_time_read gives (warm-path.sh wants 3:
# a warm scan takes tens of milliseconds).
BENCH_WALL_DIGITS=2

# bench_root: every script runs from any directory, so it moves to the
# repository root (go build and the relative paths below need it). The
# caller's directory stays in $OLDPWD for bench_abs. BENCH_CACHE is where
# downloads and built images are kept.
bench_root() {
	cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit
	REPO_ROOT=$PWD
	BENCH_CACHE=${BENCH_CACHE:-$HOME/.cache/customs-bench}
}

# bench_abs VAR...: after bench_root's cd, a relative path the caller gave
# (argument or environment) means a path from the caller's directory,
# $OLDPWD. Empty values stay empty (an unset option).
bench_abs() {
	local v
	for v in "$@"; do
		[[ -z ${!v:-} || ${!v} = /* ]] || printf -v "$v" '%s' "$OLDPWD/${!v}"
	done
}

# bench_image_arg "$@": IMAGE is the first argument, by default the Debian
# test image under BENCH_CACHE.
bench_image_arg() {
	IMAGE=${1:-$BENCH_CACHE/debian-12.tar}
	[[ $IMAGE = /* ]] || IMAGE="$OLDPWD/$IMAGE"
}

# bench_need_image "$@": the default image is built when missing (by
# debian-image.sh, which needs root); an image the caller named must exist.
bench_need_image() {
	[[ -s $IMAGE ]] && return
	if [[ $# -eq 0 ]]; then
		"$REPO_ROOT/scripts/bench/debian-image.sh" "$IMAGE"
	else
		echo "$IMAGE: no such file" >&2
		exit 1
	fi
}

# bench_need_curl: the scripts that poll Customs' HTTP APIs need curl.
bench_need_curl() {
	command -v curl >/dev/null || {
		echo "curl is needed" >&2
		exit 1
	}
}

# bench_images "$@": the scripts that take IMAGE.tar... (at least one, each
# an existing file) set the caller's images array, absolute paths.
bench_images() {
	if [[ $# -eq 0 ]]; then
		echo "usage: $0 IMAGE.tar..." >&2
		exit 2
	fi
	images=()
	local i
	for i in "$@"; do
		[[ $i = /* ]] || i="$OLDPWD/$i"
		[[ -s $i ]] || {
			echo "$i: no such file" >&2
			exit 1
		}
		images+=("$i")
	done
}

# bench_image "$@": both of the above, for scripts that need the image at once.
bench_image() {
	bench_image_arg "$@"
	bench_need_image "$@"
}

# bench_out_arg "$@": the image builders that take exactly one argument,
# OUT.tar, a path from the caller's directory.
bench_out_arg() {
	if [[ $# -ne 1 ]]; then
		echo "usage: $0 OUT.tar" >&2
		exit 2
	fi
	OUT=$1
	[[ $OUT = /* ]] || OUT="$OLDPWD/$OUT"
}

# bench_exit_if_built: the image builders are cached; an existing OUT is
# kept (exit 0) unless FORCE=1.
bench_exit_if_built() {
	if [[ -s $OUT && ${FORCE:-0} != 1 ]]; then
		echo "$OUT exists (FORCE=1 to rebuild)" >&2
		exit 0
	fi
}

# bench_need_time: measurements run under GNU time (`/usr/bin/time -v`: the
# shell keyword has no peak RSS), which is Debian's `time` package.
bench_need_time() {
	if [[ ! -x /usr/bin/time ]]; then
		apt-get update -q
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q time
	fi
}

# bench_customs DIR: the binary under test is CUSTOMS=path (from the
# caller's directory) when given, else built from this tree into DIR, so
# that a measurement is of the checked-out code.
bench_customs() {
	CUSTOMS=${CUSTOMS:-}
	bench_abs CUSTOMS
	if [[ -z $CUSTOMS ]]; then
		echo "building customs..." >&2
		go build -o "$1/customs" ./services/customs/cmd/customs
		CUSTOMS=$1/customs
	fi
}

# bench_crane: CRANE=path, else crane on PATH, else crane v0.22.1 in
# $BENCH_CACHE/bin, go installed there when missing. Pinned so that every
# machine writes and serves images with the same code.
bench_crane() {
	CRANE=${CRANE:-}
	[[ -z $CRANE ]] || return 0
	if command -v crane >/dev/null; then
		CRANE=$(command -v crane)
	else
		CRANE=$BENCH_CACHE/bin/crane
		if [[ ! -x $CRANE ]]; then
			mkdir -p "$BENCH_CACHE/bin"
			GOBIN="$BENCH_CACHE/bin" go install github.com/google/go-containerregistry/cmd/crane@v0.22.1
		fi
	fi
}

# bench_registry FALLBACK_PORT: `crane registry serve` (blobs on disk in
# $tmp/blobs, log in $tmp/registry.log) on a free loopback port; sets addr
# and reg_pid (the caller's trap stops it) and waits up to 10 s for /v2/.
# crane prints the port it chose only in a log line, so one is asked of
# the kernel and handed over.
bench_registry() {
	local port
	port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || echo "$1")
	addr=127.0.0.1:$port
	mkdir -p "$tmp/blobs"
	"$CRANE" registry serve --address "$addr" --disk "$tmp/blobs" >"$tmp/registry.log" 2>&1 &
	reg_pid=$!
	for _ in $(seq 100); do
		curl -fsS -o /dev/null "http://$addr/v2/" 2>/dev/null && break
		sleep 0.1
	done
}

# bench_seconds DIGITS TIME: GNU time's "h:mm:ss" or "m:ss.cc" in seconds.
bench_seconds() {
	awk -v d="$1" -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; printf "%." d "f", s }' <<<"$2"
}

# bench_time_read FILE: WALL (seconds, BENCH_WALL_DIGITS digits), CPU
# (user+system seconds) and RSS (peak, KiB) from a `/usr/bin/time -v` log.
bench_time_read() {
	WALL=$(bench_seconds "$BENCH_WALL_DIGITS" "$(sed -n 's/.*Elapsed (wall clock) time.*: //p' "$1")")
	RSS=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$1")
	CPU=$(awk -F': ' '/User time|System time/ { s += $2 } END { printf "%.2f", s }' "$1")
}

# bench_timed LABEL I OUT CMD...: run I of CMD under /usr/bin/time -v, its
# stdout to OUT, then bench_time_read. A failed run shows the end of its
# stderr and time log and returns 1 (under set -e the script stops there).
bench_timed() {
	local label=$1 i=$2 out=$3
	shift 3
	if ! /usr/bin/time -v -o "$tmp/time" "$@" >"$out" 2>"$tmp/stderr"; then
		echo "$label run $i failed:" >&2
		tail -n 20 "$tmp/stderr" "$tmp/time" >&2
		return 1
	fi
	bench_time_read "$tmp/time"
}

# bench_run FORMAT LABEL I OUT CMD...: bench_timed, then one line in FORMAT
# (label, run, wall s, cpu s, peak RSS MiB), and the figures appended to
# $tmp/LABEL.wall, .cpu and .rss for bench_summary.
bench_run() {
	local format=$1 label=$2 i=$3
	shift
	bench_timed "$@"
	# shellcheck disable=SC2059 # the format is the caller's
	printf "$format" "$label" "$i" "$WALL" "$CPU" "$(bench_mib "$RSS")"
	echo "$WALL" >>"$tmp/$label.wall"
	echo "$CPU" >>"$tmp/$label.cpu"
	echo "$RSS" >>"$tmp/$label.rss"
}

# bench_summary FORMAT LABEL: what bench_run kept of LABEL, in FORMAT
# (label, median wall s, median cpu s, highest peak RSS MiB): medians
# because a shared machine's load makes single runs noisy.
bench_summary() {
	# shellcheck disable=SC2059 # the format is the caller's
	printf "$1" "$2" \
		"$(bench_median "$tmp/$2.wall")" "$(bench_median "$tmp/$2.cpu")" \
		"$(sort -n "$tmp/$2.rss" | tail -n 1 | awk '{ print $1 / 1024 }')"
}

# bench_median [FILE]: the median of the numbers in FILE (or stdin), one a
# line; the upper one of an even count; nothing for none.
bench_median() {
	sort -n "$@" | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)] }'
}

# bench_mib KIB: KiB (time -v's unit) in MiB, as awk prints it.
bench_mib() {
	awk -v k="$1" 'BEGIN { print k / 1024 }'
}

# bench_mb BYTES: bytes in MiB with one decimal, for image and layer sizes.
bench_mb() {
	awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'
}

# bench_same_reports A.json B.json DIFFER SAME: a faster mode must not find
# less. When jq is there, stops (exit 1, DIFFER on stderr) unless the two
# customs reports list the same packages and findings (the artifact they
# name may differ), else prints "reports: SAME (N packages)", N from B.
bench_same_reports() {
	command -v jq >/dev/null || return 0
	local q='([.packages // [] | .[] | .purl] | sort), ([.findings // [] | .[] | [.kind, .rule, .path]] | sort)'
	if [[ $(jq -c "$q" "$1") != "$(jq -c "$q" "$2")" ]]; then
		echo "$3" >&2
		exit 1
	fi
	echo "reports: $4 ($(jq '.packages // [] | length' "$2") packages)"
}

# bench_repack IMG CONFIG OUT: IMG is an unpacked `docker save` tarball whose
# config file is named by its digest. Puts CONFIG there under its own
# digest instead, points manifest.json at it and writes the tarball (owner
# 0, mtime 0: the same content gives the same bytes) to OUT. Sets layers
# (the layer files, bottom first).
bench_repack() {
	local img=$1 config=$2 out=$3 old new
	old=$(jq -r '.[0].Config' "$img/manifest.json")
	new=sha256:$(sha256sum "$config" | cut -d' ' -f1)
	rm "$img/$old"
	mv "$config" "$img/$new"
	jq -c --arg new "$new" '.[0].Config = $new' "$img/manifest.json" >"$img.manifest.json"
	mv "$img.manifest.json" "$img/manifest.json"
	mapfile -t layers < <(jq -r '.[0].Layers[]' "$img/manifest.json")
	tar -C "$img" --owner=0 --group=0 --numeric-owner --mtime=@0 -cf "$img.tar" "$new" "${layers[@]}" manifest.json
	mkdir -p "$(dirname "$out")"
	mv "$img.tar" "$out"
}
