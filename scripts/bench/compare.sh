#!/usr/bin/env bash
# Customs against the decode floor and its peers on the same images, in the
# same run: for each image, RUNS rounds in which every tool runs once, in
# turn (the starting tool rotates from round to round), all cold, each under
# /usr/bin/time -v. Prints medians of wall time, user+system CPU time and
# peak RSS as a markdown table, plus what each tool found.
#
#   scripts/bench/compare.sh IMAGE.tar...
#
# Tools (a missing peer is reported as n/a):
#   floor          decodelimit IMAGE.tar (../shared/tools/decodelimit: gunzip
#                  and tar walk, nothing else; -j 2)
#   customs        customs scan --input IMAGE.tar, default options (every
#                  scanner, no --layer-cache), JSON to a file
#   trivy-sbom     trivy image --input IMAGE.tar --format cyclonedx (package
#                  inventory only: Trivy turns its scanners off for SBOM formats)
#   trivy-secrets  trivy image --input IMAGE.tar --scanners secret --format json
#   syft           syft scan -q docker-archive:IMAGE.tar -o json
# Trivy runs with --skip-db-update --skip-java-db-update --offline-scan
# --disable-telemetry --skip-version-check and a
# new, empty --cache-dir each run; syft with SYFT_CHECK_FOR_APP_UPDATE=false
# and an empty XDG_CACHE_HOME each run.
#
# Environment:
#   RUNS=3            rounds per image
#   TOOLS             which tools, default "floor customs trivy-sbom trivy-secrets syft"
#   CUSTOMS=path      customs binary (default: built from this tree)
#   DECODELIMIT=path  decodelimit binary (default: built from ../shared/tools/decodelimit)
#   TRIVY=path, SYFT=path  peers (default: on PATH, else $BENCH_CACHE/bin)
#   INSTALL_PEERS=1   go install the missing peers into $BENCH_CACHE/bin
#                     (syft v1.57.1 ~10 min, trivy v0.74.0 20+ min on 2 cores)
#   TRIVY_SBOM_ARGS   extra trivy-sbom arguments. Offline, Trivy cannot fetch its
#                     Java DB and fails on any image with jars ("--skip-java-db-update
#                     cannot be specified on the first run"): TRIVY_SBOM_ARGS='--skip-files **/*.jar'
#                     measures it without its jar analysis (fewer packages, less work)
#   KEEP=DIR          keep every measurement (DIR/runs.tsv) and each tool's last
#                     output, stderr and time -v log per image (DIR/<image>/)
#   BENCH_CACHE       default ~/.cache/customs-bench
set -euo pipefail

# shellcheck source=scripts/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_root
RUNS=${RUNS:-3}
TOOLS=${TOOLS:-floor customs trivy-sbom trivy-secrets syft}
SYFT_VERSION=v1.57.1
TRIVY_VERSION=v0.74.0

bench_images "$@"
bench_abs CUSTOMS DECODELIMIT TRIVY SYFT KEEP

for t in time jq; do
	[[ $t == time && -x /usr/bin/time ]] && continue
	[[ $t == jq ]] && command -v jq >/dev/null && continue
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q time jq
	break
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/customs-compare.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

bench_customs "$tmp"
DECODELIMIT=${DECODELIMIT:-}
if [[ -z $DECODELIMIT ]]; then
	echo "building decodelimit..." >&2
	(cd "$REPO_ROOT/../shared/tools/decodelimit" && go build -o "$tmp/decodelimit" .)
	DECODELIMIT=$tmp/decodelimit
fi

# find_peer NAME VAR MODULE VERSION [GOEXPERIMENT]: $VAR, else NAME on PATH,
# else $BENCH_CACHE/bin/NAME, else (INSTALL_PEERS=1) go install it there.
find_peer() {
	local name=$1 var=$2 module=$3 version=$4 exp=${5:-}
	[[ -n ${!var:-} ]] && return
	if command -v "$name" >/dev/null; then
		printf -v "$var" '%s' "$(command -v "$name")"
	elif [[ -x $BENCH_CACHE/bin/$name ]]; then
		printf -v "$var" '%s' "$BENCH_CACHE/bin/$name"
	elif [[ ${INSTALL_PEERS:-0} == 1 ]]; then
		echo "installing $name $version (slow)..." >&2
		mkdir -p "$BENCH_CACHE/bin"
		GOEXPERIMENT=$exp GOBIN="$BENCH_CACHE/bin" go install "$module@$version"
		printf -v "$var" '%s' "$BENCH_CACHE/bin/$name"
	fi
}
find_peer syft SYFT github.com/anchore/syft/cmd/syft $SYFT_VERSION
# Trivy v0.74 needs encoding/json/v2 (see ../shared/README.md).
find_peer trivy TRIVY github.com/aquasecurity/trivy/cmd/trivy $TRIVY_VERSION jsonv2
export SYFT_CHECK_FOR_APP_UPDATE=false

# `go install`ed binaries report no version; their build info has it.
version_of() { go version -m "$1" 2>/dev/null | awk '$1 == "mod" { print $3 }'; }

tools=()
for t in $TOOLS; do
	case $t in
	floor | customs) tools+=("$t") ;;
	trivy-sbom | trivy-secrets) [[ -n ${TRIVY:-} ]] && tools+=("$t") ;;
	syft) [[ -n ${SYFT:-} ]] && tools+=("$t") ;;
	*)
		echo "unknown tool $t" >&2
		exit 2
		;;
	esac
done

# run_tool TOOL IMAGE OUT: one cold run, stdout to OUT (or the tool writes it).
run_tool() {
	local tool=$1 image=$2 out=$3
	local trivy_args=(image --input "$image" --skip-db-update --skip-java-db-update --offline-scan --disable-telemetry --skip-version-check
		--quiet --cache-dir "$tmp/cache" --output "$out")
	local sbom_extra=()
	read -r -a sbom_extra <<<"${TRIVY_SBOM_ARGS:-}" # split on spaces, no globbing
	rm -rf "$tmp/cache" && mkdir "$tmp/cache"
	case $tool in
	floor) /usr/bin/time -v -o "$tmp/time" "$DECODELIMIT" "$image" >"$out" ;;
	customs) /usr/bin/time -v -o "$tmp/time" "$CUSTOMS" scan --input "$image" >"$out" ;;
	trivy-sbom) /usr/bin/time -v -o "$tmp/time" "$TRIVY" "${trivy_args[@]}" --format cyclonedx "${sbom_extra[@]}" ;;
	trivy-secrets) /usr/bin/time -v -o "$tmp/time" "$TRIVY" "${trivy_args[@]}" --scanners secret --format json ;;
	syft) XDG_CACHE_HOME=$tmp/cache /usr/bin/time -v -o "$tmp/time" "$SYFT" scan -q "docker-archive:$image" -o json >"$out" ;;
	esac
}

# What a tool found, from its last output.
found() {
	local tool=$1 out=$2
	case $tool in
	floor) sed -n 's/.*entries=\([0-9]*\) bytes=\([0-9]*\).*/\1 entries, \2 bytes/p' "$out" ;;
	customs) jq -r '[(.packages // [] | length | "\(.) packages"),
		(.findings // [] | group_by(.kind) | map("\(length) \(.[0].kind)") | .[])] | join(", ")' "$out" ;;
	trivy-sbom) jq -r '"\([.components[]? | select(.purl)] | length) components with a purl"' "$out" ;;
	trivy-secrets) jq -r '"\([.Results[]?.Secrets[]?] | length) secrets"' "$out" ;;
	syft) jq -r '"\(.artifacts | length) artifacts"' "$out" ;;
	esac
}

# med IMAGE TOOL COLUMN: median of a runs.tsv column over the tool's good runs
med() {
	awk -F'\t' -v i="$1" -v t="$2" -v c="$3" '$1 == i && $2 == t && $4 != "fail" { print $c }' "$tmp/runs.tsv" | bench_median
}
mib() { awk -v k="$1" 'BEGIN { printf "%.0f", k / 1024 }'; }

label() { # label TOOL → table column name
	case $1 in
	floor) echo "decode floor" ;; customs) echo customs ;; trivy-sbom) echo "Trivy SBOM" ;;
	trivy-secrets) echo "Trivy secrets" ;; syft) echo Syft ;;
	esac
}

echo "load:  $(uptime)"
echo "cpus:  $(nproc)"
echo "customs $CUSTOMS ($(git -C "$REPO_ROOT" describe --always --dirty 2>/dev/null || echo '?'))"
db=${CUSTOMS_DB:-${XDG_CACHE_HOME:-$HOME/.cache}/customs/vulndb.gob.gz}
[[ -f $db ]] && echo "customs vulnerability database: $db (matching included)" ||
	echo "customs vulnerability database: none ($db absent): packages without matching"
[[ -n ${TRIVY:-} ]] && echo "trivy   $TRIVY ($(version_of "$TRIVY"))" || echo "trivy   n/a (TRIVY=path, PATH, or INSTALL_PEERS=1)"
[[ -n ${SYFT:-} ]] && echo "syft    $SYFT ($(version_of "$SYFT"))" || echo "syft    n/a (SYFT=path, PATH, or INSTALL_PEERS=1)"
echo "runs:  $RUNS, tools: ${tools[*]}"
echo

# Every tool's binary leaves the page cache once, then is read back by its
# first run as an installed binary is (readahead). A binary just written by
# go build sits in the page cache in large folios, and each page fault then
# maps far more of it: customs' file-backed RSS read 46 MiB fresh from the
# linker and 34 MiB once evicted. Round 1 pays the disk read; the medians
# do not.
for b in "$CUSTOMS" "$DECODELIMIT" "${TRIVY:-}" "${SYFT:-}"; do
	# sync first: dirty pages (a binary just written) are not dropped.
	[[ -n $b ]] && sync "$b" && dd if="$b" iflag=nocache count=0 status=none
done

printf 'image\ttool\trun\twall_s\tcpu_s\tmaxrss_kb\n' >"$tmp/runs.tsv"
rows=() founds=()
for image in "${images[@]}"; do
	name=$(basename "$image" .tar)
	# Read the tarball once so that no tool pays for the disk alone.
	cat "$image" >/dev/null
	mkdir -p "$tmp/out/$name"
	for ((r = 0; r < RUNS; r++)); do
		n=${#tools[@]}
		for ((k = 0; k < n; k++)); do
			tool=${tools[(r + k) % n]}
			out=$tmp/out/$name/$tool.out
			if ! run_tool "$tool" "$image" "$out" 2>"$tmp/out/$name/$tool.stderr"; then
				echo "$name: $tool run $((r + 1)) failed:" >&2
				tail -n 20 "$tmp/out/$name/$tool.stderr" "$tmp/time" >&2 || true
				printf '%s\t%s\t%d\tfail\tfail\tfail\n' "$name" "$tool" $((r + 1)) >>"$tmp/runs.tsv"
				continue
			fi
			cp "$tmp/time" "$tmp/out/$name/$tool.time"
			bench_time_read "$tmp/time"
			wall=$WALL cpu=$CPU rss=$RSS
			printf '%s\t%s\t%d\t%s\t%s\t%s\n' "$name" "$tool" $((r + 1)) "$wall" "$cpu" "$rss" >>"$tmp/runs.tsv"
			printf '%-14s %-13s run %d  wall %7.2f s  cpu %7.2f s  peak RSS %6s MiB\n' \
				"$name" "$tool" $((r + 1)) "$wall" "$cpu" "$(mib "$rss")" >&2
		done
	done

	# Medians per tool (failed runs left out).
	declare -A W=() C=() R=()
	for tool in floor customs trivy-sbom trivy-secrets syft; do
		W[$tool]=$(med "$name" "$tool" 4) C[$tool]=$(med "$name" "$tool" 5) R[$tool]=$(med "$name" "$tool" 6)
	done
	cell() { [[ -n ${W[$1]} ]] && printf '%.2f s (cpu %.2f s)' "${W[$1]}" "${C[$1]}" || echo n/a; }
	rsscell() { [[ -n ${R[$1]} ]] && mib "${R[$1]}" || echo n/a; }
	ratio=n/a
	[[ -n ${W[floor]} && -n ${W[customs]} ]] &&
		ratio=$(awk -v a="${W[customs]}" -v b="${W[floor]}" 'BEGIN { if (b > 0) printf "%.1f×", a / b; else print "n/a" }')
	nlayers=$(tar -xOf "$image" manifest.json | jq '.[0].Layers | length')
	size=$(awk -v b="$(stat -c %s "$image")" 'BEGIN { printf "%.0f", b / 1e6 }')
	unpacked=
	[[ -f $tmp/out/$name/floor.out ]] && unpacked=$(sed -n 's/.*bytes=\([0-9]*\).*/\1/p' "$tmp/out/$name/floor.out" |
		awk '{ if ($1 >= 1e9) printf ", %.2f GB unpacked", $1 / 1e9; else printf ", %.0f MB unpacked", $1 / 1e6 }')
	[[ $nlayers == 1 ]] && nlayers="1 layer" || nlayers="$nlayers layers"
	rows+=("| $name ($size MB, $nlayers$unpacked) | $(cell floor) | $(cell customs) | $ratio | $(cell trivy-sbom) | $(cell trivy-secrets) | $(cell syft) | $(rsscell customs) / $(rsscell trivy-sbom) / $(rsscell trivy-secrets) / $(rsscell syft) / $(rsscell floor) MiB |")
	for tool in "${tools[@]}"; do
		[[ -s $tmp/out/$name/$tool.out ]] && founds+=("$name"$'\t'"$(label "$tool"): $(found "$tool" "$tmp/out/$name/$tool.out" 2>/dev/null || echo '?')")
	done
	unset W C R
done

echo
echo "medians of $RUNS runs: wall time (user+system CPU time)"
echo
echo "| image | decode floor | customs (all scanners) | ratio to floor | Trivy SBOM | Trivy secrets | Syft | peak RSS customs / Trivy SBOM / Trivy secrets / Syft / floor |"
echo "|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
echo "found (last run):"
printf '%s\n' "${founds[@]}" | awk -F'\t' '{ printf "  %-14s %s\n", $1, $2 }'
echo
echo "load after: $(uptime)"

if [[ -n ${KEEP:-} ]]; then
	mkdir -p "$KEEP"
	cp "$tmp/runs.tsv" "$KEEP/runs.tsv"
	cp -r "$tmp/out/." "$KEEP/"
	echo "kept in $KEEP: runs.tsv, <image>/<tool>.{out,stderr,time}"
fi
