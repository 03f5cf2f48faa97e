#!/usr/bin/env bash
# A large multi-layer image (~1.3 GB unpacked, ~440 MB compressed, 6 layers)
# built offline from this machine's own files, to measure scans of an image the
# size of a real application image (issue 13: "6 layers, 437 MB, 1.25 GB
# unpacked"). Each layer is a tar of some host directories (owner 0, sorted,
# one fixed mtime, gzip -n); `crane append` (no base, nothing pulled) writes a
# `docker save` tarball.
#
#   scripts/bench/large-image.sh OUT.tar
#
# Default layers (paths on this host, stored at the same place in the image;
# a missing path is skipped with a note, a layer with no path is left out):
#   1 os       /usr/bin /usr/sbin /var/lib/dpkg /etc/os-release /etc/debian_version /usr/lib/os-release
#   2 share    /usr/share/locale /usr/share/java /usr/share/maven-repo
#   3 go       $(go env GOROOT)                    (the Go toolchain)
#   4 python   /usr/lib/python3 /usr/lib/python3.11 /usr/lib/node_modules
#   5 chromium /usr/lib/chromium
#   6 gomod    $(go env GOMODCACHE)/golang.org  (golang.org/x/... sources)
#
# Environment:
#   FORCE=1        rebuild even if OUT.tar exists
#   LAYERS         other layers: one per line, "NAME /path /path ...";
#                  e.g. LAYERS=$'a /usr/share/doc\nb /usr/share/locale'
#   TAG            image tag inside the tarball, default customs-bench/large:1
#   GZIP_LEVEL     default 6
#   BENCH_CACHE    where crane is installed, default ~/.cache/customs-bench
#
# Reading the module cache under /root needs root (or the cache's owner).
# The same host files give the same layer digests; another machine (other
# package versions, another module cache) gives another image of about the
# same shape. /etc is left out on purpose (host keys, credentials).
set -euo pipefail

# shellcheck source=scripts/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_root
bench_out_arg "$@"
bench_exit_if_built

TAG=${TAG:-customs-bench/large:1}
GZIP_LEVEL=${GZIP_LEVEL:-6}

goroot=$(go env GOROOT)
gomod=$(go env GOMODCACHE)
LAYERS=${LAYERS:-"os /usr/bin /usr/sbin /var/lib/dpkg /etc/os-release /etc/debian_version /usr/lib/os-release
share /usr/share/locale /usr/share/java /usr/share/maven-repo
go $goroot
python /usr/lib/python3 /usr/lib/python3.11 /usr/lib/node_modules
chromium /usr/lib/chromium
gomod $gomod/golang.org"}

for t in jq gzip; do
	command -v "$t" >/dev/null || {
		apt-get update -q
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q jq gzip
		break
	}
done

CRANE= # this script takes no CRANE=path
bench_crane

work=$(mktemp -d "${TMPDIR:-/tmp}/customs-large.XXXXXX")
trap 'rm -rf "$work"' EXIT

names=() descs=() raw=()
while read -r name paths; do
	[[ -n $name ]] || continue
	rel=()
	for p in $paths; do
		if [[ -e $p || -L $p ]]; then
			rel+=("${p#/}")
		else
			echo "$name: $p missing, skipped" >&2
		fi
	done
	if [[ ${#rel[@]} -eq 0 ]]; then
		echo "$name: nothing to add, layer left out" >&2
		continue
	fi
	echo "layer $name: ${rel[*]}" >&2
	# Sorted, numeric owner 0, one fixed mtime: the same files give the same
	# tar. Exit status 1 means "a file changed as we read it" (the module
	# cache may grow meanwhile): the tar is still valid.
	rc=0
	tar -C / --sort=name --numeric-owner --owner=0 --group=0 --mtime=@1704067200 \
		--warning=no-file-ignored -cf "$work/$name.tar" "${rel[@]}" || rc=$?
	if [[ $rc -gt 1 ]]; then
		echo "tar of layer $name failed ($rc)" >&2
		exit 1
	fi
	raw+=("$(stat -c %s "$work/$name.tar")")
	gzip -"$GZIP_LEVEL" -n "$work/$name.tar"
	names+=("$name")
	d=$(printf ' /%s' "${rel[@]}")
	descs+=("large-image.sh:$d")
done <<<"$LAYERS"

args=()
for n in "${names[@]}"; do args+=(-f "$work/$n.tar.gz"); done
"$CRANE" append "${args[@]}" -t "$TAG" -o "$work/image.tar" 2>"$work/crane.log" || {
	cat "$work/crane.log" >&2
	exit 1
}
rm -f "$work"/*.tar.gz

# crane's empty base leaves the platform empty: set linux/<arch>, a PATH and
# one history entry per layer. The config's file name is its digest.
arch=$(dpkg --print-architecture 2>/dev/null || go env GOARCH)
mkdir "$work/img"
tar -C "$work/img" -xf "$work/image.tar"
rm "$work/image.tar"
old=$(jq -r '.[0].Config' "$work/img/manifest.json")
descs_json=$(printf '%s\n' "${descs[@]}" | jq -R . | jq -s -c .)
jq -c --arg arch "$arch" --argjson descs "$descs_json" '
	.architecture = $arch | .os = "linux"
	| .config = {Env: ["PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], Cmd: ["bash"]}
	| .history = ($descs | map({created: "2024-01-01T00:00:00Z", created_by: .}))
' "$work/img/$old" >"$work/config.json"
bench_repack "$work/img" "$work/config.json" "$OUT"

mb() { bench_mb "$@"; }
total=0
{
	echo "$OUT: $(mb "$(stat -c %s "$OUT")") MiB, tag $TAG, ${#layers[@]} layers (MiB gzip / tar):"
	for i in "${!names[@]}"; do
		total=$((total + raw[i]))
		printf '  %d %-8s %6s / %6s  %s  %s\n' $((i + 1)) "${names[i]}" \
			"$(mb "$(stat -c %s "$work/img/${layers[i]}")")" "$(mb "${raw[i]}")" "${layers[i]:0:19}" "${descs[i]#large-image.sh: }"
	done
	echo "  unpacked total: $(mb "$total") MiB"
} >&2
