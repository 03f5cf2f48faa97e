#!/usr/bin/env bash
# Compare the package sets of a Customs report and a Syft JSON report of the
# same image.
#
#   scripts/bench/compare-packages.sh CUSTOMS.json SYFT.json
#   scripts/bench/compare-packages.sh IMAGE.tar
#
# With IMAGE.tar, both tools are run first (customs: $CUSTOMS, default built
# from this tree into a temporary directory; syft: $SYFT, default syft on
# PATH, else $BENCH_CACHE/bin/syft, with SYFT_ARGS appended, e.g.
# SYFT_ARGS='--override-default-catalogers all' to add the lockfile
# catalogers Syft only runs on directories). The reports are kept in
# $KEEP when set.
#
# Packages are compared by their purl without qualifiers and subpath
# (pkg:TYPE/namespace/name@version), lowercased, "%40" read as "@", PyPI
# names PEP 503-normalized, Go versions without "v"; a package without a purl falls back to
# TYPE/name@version with Syft's artifact type mapped to the purl type.
# Each side is a set: the same package found at several paths (Customs
# reports a lockfile entry and the installed copy separately; Syft merges
# some) counts once, its paths listed.
#
# Prints per purl type the number of distinct packages in both, only in
# Customs and only in Syft, then the packages found by one tool only, with
# the paths the tool found them at. For a package found by both with
# different versions both lines appear, next to each other (sorted by key).
set -euo pipefail

# shellcheck source=scripts/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_root

if ! command -v jq >/dev/null; then
	apt-get update -q >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q jq >/dev/null
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/customs-compare.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

abs() { [[ $1 = /* ]] && echo "$1" || echo "$OLDPWD/$1"; }

case $# in
1)
	IMAGE=$(abs "$1")
	CUSTOMS=${CUSTOMS:-}
	if [[ -z $CUSTOMS ]]; then
		go build -o "$tmp/customs" ./services/customs/cmd/customs
		CUSTOMS=$tmp/customs
	fi
	SYFT=${SYFT:-$(command -v syft || echo "$BENCH_CACHE/bin/syft")}
	export SYFT_CHECK_FOR_APP_UPDATE=false
	"$CUSTOMS" scan --input "$IMAGE" >"$tmp/customs.json"
	# shellcheck disable=SC2086 # SYFT_ARGS is a list of flags
	"$SYFT" scan -q "docker-archive:$IMAGE" -o json ${SYFT_ARGS:-} >"$tmp/syft.json"
	if [[ -n ${KEEP:-} ]]; then
		mkdir -p "$KEEP"
		cp "$tmp/customs.json" "$tmp/syft.json" "$KEEP/"
	fi
	C=$tmp/customs.json S=$tmp/syft.json
	;;
2)
	C=$(abs "$1") S=$(abs "$2")
	;;
*)
	echo "usage: $0 CUSTOMS.json SYFT.json | $0 IMAGE.tar" >&2
	exit 2
	;;
esac

# shellcheck disable=SC2016 # jq program, not shell
# key: the normalized purl (percent-escapes decoded: Syft writes an epoch
# "1:" as "1%3a", Customs as "1:"; Go versions without "v": Syft writes
# pkg:golang/stdlib@1.22.3, Customs @v1.22.3), or TYPE/name@version.
norm='
def pep503: ascii_downcase | gsub("[-_.]+"; "-");
def hexval: ascii_downcase | explode | map(if . >= 97 then . - 87 else . - 48 end) | .[0] * 16 + .[1];
def unescape: gsub("%(?<h>[0-9a-fA-F]{2})"; [.h | hexval] | implode);
def key($type; $name; $version):
	if (.purl // "") != "" then
		.purl | sub("[?#].*$"; "") | unescape | ascii_downcase
		| if startswith("pkg:pypi/") then
			capture("^pkg:pypi/(?<n>[^@]*)(?<v>@.*)?$") | "pkg:pypi/" + (.n | pep503) + (.v // "")
		  elif startswith("pkg:golang/") then sub("@v(?<d>[0-9])"; "@\(.d)")
		  else . end
	else
		"pkg:" + $type + "/" + ($name | ascii_downcase) + "@" + $version
	end;
'
jq -r "$norm"'
	.packages[]? | [key(.ecosystem // "unknown"; .name; .version), .path] | @tsv
' "$C" | sort -u >"$tmp/c"
jq -r "$norm"'
	def ptype: {"deb": "deb", "apk": "apk", "rpm": "rpm", "python": "pypi", "npm": "npm",
		"java-archive": "maven", "jenkins-plugin": "maven", "gem": "gem", "go-module": "golang",
		"php-composer": "composer", "rust-crate": "cargo", "dotnet": "nuget"}[.] // .;
	.artifacts[]? | [key(.type | ptype; .name; .version), (.locations // [] | map(.path | ltrimstr("/")) | join(" "))] | @tsv
' "$S" | sort -u >"$tmp/s"

cut -f1 "$tmp/c" | sort -u >"$tmp/ck"
cut -f1 "$tmp/s" | sort -u >"$tmp/sk"
comm -12 "$tmp/ck" "$tmp/sk" >"$tmp/both"
comm -23 "$tmp/ck" "$tmp/sk" >"$tmp/conly"
comm -13 "$tmp/ck" "$tmp/sk" >"$tmp/sonly"

ptype() { sed -E 's|^pkg:([^/]*)/.*|\1|'; }
echo "customs: $(jq '.packages | length' "$C") packages, $(wc -l <"$tmp/ck") distinct"
echo "syft:    $(jq '.artifacts | length' "$S") artifacts, $(wc -l <"$tmp/sk") distinct"
echo
printf '%-10s %6s %8s %8s\n' type both customs syft
for t in $(cat "$tmp/ck" "$tmp/sk" | ptype | sort -u); do
	printf '%-10s %6d %8d %8d\n' "$t" \
		"$(ptype <"$tmp/both" | grep -cx "$t" || true)" \
		"$(ptype <"$tmp/conly" | grep -cx "$t" || true)" \
		"$(ptype <"$tmp/sonly" | grep -cx "$t" || true)"
done

# paths KEYFILE TSV: key<TAB>paths (all paths of a key, comma-separated).
paths() {
	awk -F'\t' 'NR == FNR { want[$1] = 1; next }
		($1 in want) { if ($1 in p) p[$1] = p[$1] ", " $2; else p[$1] = $2 }
		END { for (k in p) printf "%s\t%s\n", k, p[k] }' "$1" "$2" | sort
}
echo
echo "== only in syft ($(wc -l <"$tmp/sonly"))"
paths "$tmp/sonly" "$tmp/s" | awk -F'\t' '{ printf "  %-60s %s\n", $1, $2 }'
echo
echo "== only in customs ($(wc -l <"$tmp/conly"))"
paths "$tmp/conly" "$tmp/c" | awk -F'\t' '{ printf "  %-60s %s\n", $1, $2 }'
