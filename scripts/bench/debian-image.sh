#!/usr/bin/env bash
# Build a realistic Debian 12 (bookworm) image tarball from real packages:
# debootstrap --variant=minbase plus a few real packages, one gzip layer,
# written as a `docker save` tarball by crane (no registry pull).
#
#   scripts/bench/debian-image.sh OUT.tar
#
# Needs root (debootstrap) and http://deb.debian.org (directly or through the
# proxy apt is configured with). Cached: exits at once if OUT.tar exists,
# unless FORCE=1.
#
# Environment:
#   FORCE=1          rebuild even if OUT.tar exists
#   SUITE            default bookworm
#   MIRROR           default http://deb.debian.org/debian
#   INCLUDE          extra packages (comma-separated), default curl,ca-certificates.
#                    minbase alone is ~47 MB compressed / 115 MB (88 packages, about
#                    the official debian:12 image); curl brings it to ~53 MB / 129 MB
#                    (106 packages). INCLUDE= for minbase only.
#   TAG              image tag inside the tarball, default customs-bench/debian:12
#   BENCH_CACHE      where crane is installed, default ~/.cache/customs-bench
set -euo pipefail

# shellcheck source=scripts/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_root
bench_out_arg "$@"
bench_exit_if_built

SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
INCLUDE=${INCLUDE-curl,ca-certificates}
TAG=${TAG:-customs-bench/debian:12}

if [[ $(id -u) -ne 0 ]]; then
	echo "debootstrap needs root" >&2
	exit 1
fi

# A proxy apt is configured with (Acquire::http::Proxy) is given to debootstrap.
if [[ -z ${http_proxy:-} ]] && command -v apt-config >/dev/null; then
	proxy=$(apt-config shell P Acquire::http::Proxy | sed -n "s/^P='\(.*\)'$/\1/p")
	if [[ -n $proxy && $proxy != DIRECT ]]; then
		export http_proxy=$proxy
		echo "using apt's proxy $http_proxy" >&2
	fi
fi

if ! command -v debootstrap >/dev/null; then
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap
fi

bench_crane

work=$(mktemp -d "${TMPDIR:-/tmp}/customs-debian.XXXXXX")
cleanup() {
	# debootstrap may leave /proc or /sys mounted in the target on failure.
	for m in proc sys dev/pts; do
		if mountpoint -q "$work/rootfs/$m" 2>/dev/null; then umount -l "$work/rootfs/$m" || true; fi
	done
	rm -rf "$work"
}
trap cleanup EXIT

include=()
[[ -n $INCLUDE ]] && include=(--include="$INCLUDE")
echo "debootstrap --variant=minbase ${include[*]:-} $SUITE $MIRROR" >&2
debootstrap --variant=minbase "${include[@]}" "$SUITE" "$work/rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 || {
	tail -n 30 "$work/debootstrap.log" >&2
	[[ -f $work/rootfs/debootstrap/debootstrap.log ]] && tail -n 30 "$work/rootfs/debootstrap/debootstrap.log" >&2
	exit 1
}

# What an image build would not keep: downloaded .debs, apt lists, logs,
# device nodes and mount points' contents.
rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb \
	"$work/rootfs/var/cache/apt/"*.bin \
	"$work/rootfs/var/lib/apt/lists/"* \
	"$work/rootfs/var/log/"*.log \
	"$work/rootfs/debootstrap"
find "$work/rootfs/dev" "$work/rootfs/proc" "$work/rootfs/sys" -mindepth 1 -delete 2>/dev/null || true

# One layer, numeric owners, sorted and without gzip timestamps: the same
# rootfs gives the same layer.
tar -C "$work/rootfs" --numeric-owner --sort=name -cf - . | gzip -6 -n >"$work/layer.tar.gz"

mkdir -p "$(dirname "$OUT")"
"$CRANE" append -f "$work/layer.tar.gz" -t "$TAG" -o "$work/image.tar"

# crane's empty base leaves os and architecture empty; a real image names its
# platform. Patch the config in the tarball (its name is its digest) instead
# of pulling a base from a registry.
arch=$(chroot "$work/rootfs" dpkg --print-architecture 2>/dev/null || dpkg --print-architecture)
mkdir "$work/img"
tar -C "$work/img" -xf "$work/image.tar"
old=$(grep -o '"Config":"[^"]*"' "$work/img/manifest.json" | cut -d'"' -f4)
sed -e "s/\"architecture\":\"\"/\"architecture\":\"$arch\"/" -e 's/"os":""/"os":"linux"/' \
	-e 's|"config":{}|"config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["bash"]}|' \
	"$work/img/$old" >"$work/config.json"
new=sha256:$(sha256sum "$work/config.json" | cut -d' ' -f1)
rm "$work/img/$old"
mv "$work/config.json" "$work/img/$new"
sed -i "s/$old/$new/" "$work/img/manifest.json"
# shellcheck disable=SC2178 # a string here, not lib.sh's layers array
layers=$(cd "$work/img" && ls -- *.tar.gz)
# shellcheck disable=SC2086,SC2128 # layer file names have no spaces
tar -C "$work/img" --numeric-owner --owner=0 --group=0 --mtime=@0 -cf "$work/image.tar" "$new" $layers manifest.json
mv "$work/image.tar" "$OUT"

pkgs=$(grep -c '^Package: ' "$work/rootfs/var/lib/dpkg/status")
mb() { bench_mb "$@"; }
echo "$OUT: $(mb "$(stat -c %s "$work/layer.tar.gz")") MiB compressed layer," \
	"$(mb "$(du -sb "$work/rootfs" | cut -f1)") MiB rootfs, $pkgs dpkg packages, tag $TAG" >&2
