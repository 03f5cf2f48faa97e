#!/usr/bin/env bash
# Build a multi-layer image tarball with OS and language packages from
# locally obtainable content only (Debian packages, the npm registry and the
# Go module cache), for comparing package detection with other scanners.
#
#   scripts/bench/polyglot-image.sh [OUT.tar]
#
# OUT.tar defaults to $BENCH_CACHE/polyglot.tar. Layers, bottom first:
#
#   1 debian  the layer of $BENCH_CACHE/debian-12.tar as is (built by
#             debian-image.sh when missing; that needs root)
#   2 python  python3-* .debs: dist-packages/*.egg-info and *.dist-info
#   3 java    lib*-java .debs: /usr/share/java/*.jar (pom.properties or not)
#   4 ruby    ruby3.1 and libruby3.1 (default and bundled gems under
#             /usr/lib/ruby/gems/3.1.0/specifications), ruby-* .debs
#             (/usr/share/rubygems-integration/all/specifications/*.gemspec)
#   5 npm     /srv/node-app: `npm install express lodash@4.17.20`
#             (package.json, package-lock.json, node_modules), and node-*
#             .debs (Debian's /usr/share/nodejs/<name>/package.json)
#   6 php     php-* .debs (/usr/share/php) and /srv/php-app with a
#             composer.lock and vendor/composer/installed.json written from
#             those packages' upstream names and versions
#   7 go      /usr/local/bin/textdemo: a tiny Go program using
#             golang.org/x/text at the version pkg/go.mod requires, built
#             offline from the module cache
#   8 rust    ripgrep .deb (a Rust binary without cargo-auditable data) and
#             /opt/ripgrep-src/Cargo.lock written from the crates the
#             Debian package lists in X-Cargo-Built-Using
#
# Every .deb is unpacked with dpkg-deb -x and recorded the way dpkg would:
# the layer carries the whole updated var/lib/dpkg/status (base packages
# plus all added so far) and var/lib/dpkg/info/<pkg>.list and .md5sums.
# Layers are plain tars (numeric owner 0, sorted, mtimes clamped), appended
# with `crane append` (no registry involved) into a `docker save` tarball;
# the config gets linux/<arch>, a PATH and one history entry per layer.
#
# Cached: exits at once if OUT.tar exists, unless FORCE=1. Downloads (.debs,
# the npm tree) are kept under $BENCH_CACHE/polyglot/ and reused.
#
# Environment:
#   FORCE=1      rebuild even if OUT.tar exists
#   BASE         base image tarball, default $BENCH_CACHE/debian-12.tar
#   TAG          default customs-bench/polyglot:1
#   BENCH_CACHE  default ~/.cache/customs-bench
set -euo pipefail

# shellcheck source=scripts/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_root

OUT=${1:-$BENCH_CACHE/polyglot.tar}
bench_abs OUT
bench_exit_if_built

BASE=${BASE:-$BENCH_CACHE/debian-12.tar}
TAG=${TAG:-customs-bench/polyglot:1}
CACHE=$BENCH_CACHE/polyglot
DEBS=$CACHE/debs

PY_DEBS=(python3-requests python3-urllib3 python3-idna python3-certifi python3-chardet
	python3-six python3-yaml python3-jinja2 python3-markupsafe)
JAVA_DEBS=(libcommons-lang3-java libcommons-io-java libguava-java libatinject-jsr330-api-java
	liberror-prone-java libjsr305-java libslf4j-java libjackson2-core-java)
RUBY_DEBS=(ruby3.1 libruby3.1 rubygems-integration ruby-rack ruby-rack-protection ruby-sinatra
	ruby-tilt ruby-mustermann)
NODE_DEBS=(node-ms node-debug node-semver)
PHP_DEBS=(php-psr-log php-psr-container php-symfony-console php-symfony-string
	php-symfony-service-contracts php-symfony-deprecation-contracts php-symfony-polyfill-mbstring)
RUST_DEBS=(ripgrep)
NPM_PKGS=(express lodash@4.17.20)

need() { # need CMD DEBIAN-PACKAGE
	command -v "$1" >/dev/null && return
	apt-get update -q >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >/dev/null
}
need jq jq
need dpkg-deb dpkg
need npm npm

bench_crane

if [[ ! -s $BASE ]]; then
	"$REPO_ROOT/scripts/bench/debian-image.sh" "$BASE"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/customs-polyglot.XXXXXX")
trap 'rm -rf "$work"' EXIT

# --- .debs ---------------------------------------------------------------

mkdir -p "$DEBS"
missing=()
for p in "${PY_DEBS[@]}" "${JAVA_DEBS[@]}" "${RUBY_DEBS[@]}" "${NODE_DEBS[@]}" "${PHP_DEBS[@]}" "${RUST_DEBS[@]}"; do
	compgen -G "$DEBS/${p}_*.deb" >/dev/null || missing+=("$p")
done
if ((${#missing[@]})); then
	echo "apt-get download ${missing[*]}" >&2
	# apt-get download works in the current directory; as root it warns
	# that _apt cannot write there, harmlessly.
	(cd "$DEBS" && { apt-get download "${missing[@]}" 2>/dev/null ||
		{ apt-get update -q >/dev/null && apt-get download "${missing[@]}"; }; }) >/dev/null
fi
deb() { # deb PKG: the cached .deb of PKG (the newest, if several)
	local f
	f=$(printf '%s\n' "$DEBS/${1}"_*.deb | sort -V | tail -n 1)
	[[ -f $f ]] || f=
	[[ -n $f ]] || { echo "no .deb for $1" >&2; exit 1; }
	echo "$f"
}
# upstream VERSION: a Debian version without epoch, revision and repack
# suffixes (2:5.4.53+dfsg-0+deb12u1 → 5.4.53).
upstream() { sed -E 's/^[0-9]+://; s/-[^-]*$//; s/[+~](dfsg|ds|repack).*$//' <<<"$1"; }

# --- the base layer and its dpkg status ------------------------------------

mkdir "$work/base"
base_layer=$(tar -xOf "$BASE" manifest.json | jq -r '.[0].Layers | if length == 1 then .[0] else error("base must have one layer") end')
tar -C "$work/base" -xf "$BASE" "$base_layer"
base_layer=$work/base/$base_layer
tar -xzOf "$base_layer" ./var/lib/dpkg/status >"$work/status"
arch=$(sed -n 's/^Architecture: //p' "$work/status" | grep -vx all | sort | uniq -c | sort -rn | awk 'NR == 1 { print $2 }')
base_pkgs=$(grep -c '^Package: ' "$work/status")

# install_debs ROOT PKG...: unpack the .debs into ROOT and record them in
# ROOT's dpkg database (status holds every package installed so far).
install_debs() {
	local root=$1 p f name
	shift
	mkdir -p "$root/var/lib/dpkg/info"
	for p in "$@"; do
		f=$(deb "$p")
		dpkg-deb -x "$f" "$root"
		name=$p
		[[ $(dpkg-deb -f "$f" Multi-Arch) == same ]] && name=$p:$(dpkg-deb -f "$f" Architecture)
		# .list: "/." then every path, as dpkg writes it.
		dpkg-deb --fsys-tarfile "$f" | tar -t | sed -e 's|^\./|/|' -e 's|/$||' -e 's|^$|/.|' \
			>"$root/var/lib/dpkg/info/$name.list"
		rm -rf "$work/ctrl" && dpkg-deb -e "$f" "$work/ctrl"
		[[ -f $work/ctrl/md5sums ]] && cp "$work/ctrl/md5sums" "$root/var/lib/dpkg/info/$name.md5sums"
		# status stanza: the control file with Status after Package.
		sed -i -e :a -e '/^\n*$/{$d;N;ba' -e '}' "$work/status" # drop trailing blank lines
		{
			echo
			dpkg-deb -f "$f" | awk 'NR == 1 { print; print "Status: install ok installed"; next } { print }'
			echo
		} >>"$work/status"
	done
	cp "$work/status" "$root/var/lib/dpkg/status"
}

# make_layer NAME ROOT: a plain tar of ROOT as $work/NAME.tar.
make_layer() {
	tar -C "$2" --sort=name --owner=0 --group=0 --numeric-owner \
		--mtime=@1704067200 --clamp-mtime -cf "$work/$1.tar" .
}

declare -a layer_names layer_descs
add_layer() { # add_layer NAME DESCRIPTION
	make_layer "$1" "$work/$1"
	layer_names+=("$1")
	layer_descs+=("$2")
}

debs_desc() { # debs_desc PKG...: "pkg=version ..."
	local p out=()
	for p in "$@"; do out+=("$p=$(dpkg-deb -f "$(deb "$p")" Version)"); done
	echo "${out[*]}"
}

# --- 2 python ------------------------------------------------------------

install_debs "$work/python" "${PY_DEBS[@]}"
add_layer python "dpkg-deb -x $(debs_desc "${PY_DEBS[@]}")"

# --- 3 java --------------------------------------------------------------

install_debs "$work/java" "${JAVA_DEBS[@]}"
add_layer java "dpkg-deb -x $(debs_desc "${JAVA_DEBS[@]}")"

# --- 4 ruby --------------------------------------------------------------

install_debs "$work/ruby" "${RUBY_DEBS[@]}"
add_layer ruby "dpkg-deb -x $(debs_desc "${RUBY_DEBS[@]}")"

# --- 5 npm ---------------------------------------------------------------

npm_app=$CACHE/node-app
if [[ ! -f $npm_app/package-lock.json || ! -d $npm_app/node_modules ]]; then
	echo "npm install ${NPM_PKGS[*]}" >&2
	rm -rf "$npm_app.tmp"
	mkdir -p "$npm_app.tmp"
	printf '{\n  "name": "polyglot-node-app",\n  "version": "1.0.0",\n  "private": true\n}\n' >"$npm_app.tmp/package.json"
	npm install --prefix "$npm_app.tmp" --no-audit --no-fund --loglevel=error "${NPM_PKGS[@]}" >&2
	rm -rf "$npm_app"
	mv "$npm_app.tmp" "$npm_app"
fi
install_debs "$work/npm" "${NODE_DEBS[@]}"
mkdir -p "$work/npm/srv"
cp -a "$npm_app" "$work/npm/srv/node-app"
npm_count=$(jq '[.packages | keys[] | select(startswith("node_modules/"))] | length' "$npm_app/package-lock.json")
add_layer npm "npm install ${NPM_PKGS[*]} in /srv/node-app ($npm_count packages in package-lock.json); dpkg-deb -x $(debs_desc "${NODE_DEBS[@]}") (/usr/share/nodejs)"

# --- 6 php ---------------------------------------------------------------

install_debs "$work/php" "${PHP_DEBS[@]}"
app=$work/php/srv/php-app
mkdir -p "$app/vendor/composer"
# php-psr-log → psr/log, php-symfony-console → symfony/console (tags vX.Y.Z).
{
	for p in "${PHP_DEBS[@]}"; do
		name=${p#php-}
		name=${name/-//}
		v=$(upstream "$(dpkg-deb -f "$(deb "$p")" Version)")
		[[ $name == symfony/* ]] && v=v$v
		lic=$(sed -n 's/^License: *//p' "$work/php/usr/share/doc/$p/copyright" 2>/dev/null | head -n 1)
		jq -n --arg n "$name" --arg v "$v" --arg lic "${lic:-MIT}" '{
			name: $n, version: $v,
			source: {type: "git", url: ("https://github.com/" + $n + ".git"), reference: $v},
			type: "library", license: [$lic]
		}'
	done
} | jq -s . >"$work/php-packages.json"
jq '{name: "polyglot/php-app", require: (map({(.name): .version}) | add)}' \
	"$work/php-packages.json" >"$app/composer.json"
jq '{
	"_readme": ["This file locks the dependencies of your project to a known state"],
	"content-hash": "0000000000000000000000000000000",
	packages: ., "packages-dev": [], aliases: [], "minimum-stability": "stable",
	"stability-flags": {}, "prefer-stable": false, "prefer-lowest": false,
	platform: {}, "platform-dev": {}, "plugin-api-version": "2.3.0"
}' "$work/php-packages.json" >"$app/composer.lock"
jq '{packages: map(. + {"install-path": ("../" + .name)}), dev: false, "dev-package-names": []}' \
	"$work/php-packages.json" >"$app/vendor/composer/installed.json"
add_layer php "dpkg-deb -x $(debs_desc "${PHP_DEBS[@]}"); /srv/php-app composer.lock + vendor/composer/installed.json ($(jq length "$work/php-packages.json") packages)"

# --- 7 go ----------------------------------------------------------------

xtext=$(awk '$1 == "golang.org/x/text" { print $2; exit }' "$REPO_ROOT/pkg/go.mod")
mkdir -p "$work/gosrc" "$work/go/usr/local/bin"
cat >"$work/gosrc/go.mod" <<EOF
module example.com/polyglot/textdemo

go 1.22

require golang.org/x/text $xtext
EOF
grep -h "^golang.org/x/text ${xtext}[ /]" "$REPO_ROOT/pkg/go.sum" >"$work/gosrc/go.sum"
cat >"$work/gosrc/main.go" <<'EOF'
// textdemo title-cases its arguments.
package main

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/text/cases"
	"golang.org/x/text/language"
)

func main() {
	fmt.Println(cases.Title(language.English).String(strings.Join(os.Args[1:], " ")))
}
EOF
(cd "$work/gosrc" && GOWORK=off GOPROXY=off GOFLAGS=-mod=mod CGO_ENABLED=0 \
	go build -trimpath -buildvcs=false -o "$work/go/usr/local/bin/textdemo" .)
go_version=$(go env GOVERSION)
add_layer go "go build ($go_version) /usr/local/bin/textdemo with golang.org/x/text $xtext"

# --- 8 rust --------------------------------------------------------------

install_debs "$work/rust" "${RUST_DEBS[@]}"
rg=$(deb ripgrep)
rg_version=$(upstream "$(dpkg-deb -f "$rg" Version)")
mkdir -p "$work/rust/opt/ripgrep-src"
{
	printf '# This file is automatically @generated by Cargo.\n# It is not intended for manual editing.\nversion = 3\n'
	# "rust-clap-2 (= 2.34.0-3)" → clap 2.34.0; Debian spells "_" as "-".
	dpkg-deb -f "$rg" X-Cargo-Built-Using | tr ',' '\n' | sed -n 's/^ *rust-\([^ ]*\) (= \([^)]*\)).*/\1 \2/p' |
		while read -r name v; do
			v=$(upstream "$v")
			[[ $name =~ ^(.*)-([0-9.]+)$ && $v == "${BASH_REMATCH[2]}".* ]] && name=${BASH_REMATCH[1]}
			case $name in
			encoding-rs | encoding-rs-io | lazy-static | num-cpus | once-cell | serde-json | thread-local)
				name=${name//-/_} ;;
			esac
			echo "$name $v"
		done | sort >"$work/crates"
	while read -r name v; do
		printf '\n[[package]]\nname = "%s"\nversion = "%s"\nsource = "registry+https://github.com/rust-lang/crates.io-index"\n' "$name" "$v"
	done <"$work/crates"
	printf '\n[[package]]\nname = "ripgrep"\nversion = "%s"\n' "$rg_version"
} >"$work/rust/opt/ripgrep-src/Cargo.lock"
add_layer rust "dpkg-deb -x $(debs_desc "${RUST_DEBS[@]}"); /opt/ripgrep-src/Cargo.lock ($(wc -l <"$work/crates") crates.io crates)"

# --- image ---------------------------------------------------------------

args=(-f "$base_layer")
for n in "${layer_names[@]}"; do args+=(-f "$work/$n.tar"); done
"$CRANE" append "${args[@]}" -t "$TAG" -o "$work/image.tar" 2>"$work/crane.log" || {
	cat "$work/crane.log" >&2
	exit 1
}

# Patch the config: platform, PATH, one history entry per layer. Its file
# name is its digest, so rename it and fix manifest.json.
mkdir "$work/img"
tar -C "$work/img" -xf "$work/image.tar"
old=$(jq -r '.[0].Config' "$work/img/manifest.json")
base_history=$(tar -xOf "$BASE" "$(tar -xOf "$BASE" manifest.json | jq -r '.[0].Config')" | jq -c '.history // []')
descs=$(printf '%s\n' "${layer_descs[@]}" | jq -R . | jq -s -c .)
jq -c --arg arch "$arch" --argjson base "$base_history" --argjson descs "$descs" '
	.architecture = $arch | .os = "linux"
	| .config = {Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], Cmd: ["bash"]}
	| .history = ((if $base == [] then [{}] else $base end)
		| map(.created_by //= "debootstrap --variant=minbase (scripts/bench/debian-image.sh)"))
		+ ($descs | map({created: "2024-01-01T00:00:00Z", created_by: ("polyglot-image.sh: " + .)}))
' "$work/img/$old" >"$work/config.json"
bench_repack "$work/img" "$work/config.json" "$OUT"

# --- summary -------------------------------------------------------------

mb() { bench_mb "$@"; }
gz() { mb "$(stat -c %s "$work/img/${layers[$1]}")"; }
{
	echo "$OUT: $(mb "$(stat -c %s "$OUT")") MiB, tag $TAG, ${#layers[@]} layers (MiB gzip / tar):"
	printf '  1 %-7s %5s / %5s  %s (%d dpkg packages)\n' debian "$(gz 0)" "$(mb "$(gzip -dc "$base_layer" | wc -c)")" \
		"$(basename "$BASE")" "$base_pkgs"
	for i in "${!layer_names[@]}"; do
		printf '  %d %-7s %5s / %5s  %s\n' $((i + 2)) "${layer_names[i]}" "$(gz $((i + 1)))" \
			"$(mb "$(stat -c %s "$work/${layer_names[i]}.tar")")" "${layer_descs[i]}"
	done
	echo "  dpkg packages after the last layer: $(grep -c '^Package: ' "$work/status")"
} >&2
