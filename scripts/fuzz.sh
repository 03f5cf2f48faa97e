#!/usr/bin/env bash
# Runs every fuzz target, one after the other, for FUZZTIME each (default
# 30s: about 20 minutes in all). Bounded and not run by CI: plain `go test`
# already runs each target over its seed corpus.
#
#   scripts/fuzz.sh                 # every target
#   scripts/fuzz.sh 'yara|webhook'  # targets whose "name package" matches
#   FUZZTIME=20s scripts/fuzz.sh
#
# A crashing input is written by go test to <package>/testdata/fuzz/<Target>/:
# fix the code, keep the file there (it is a regression seed from then on).
# New interesting inputs go to the Go build cache (go env GOCACHE)/fuzz.
#
# FUZZMINIMIZETIME (default 50x: 50 runs) bounds the minimization of each
# new input, crashers included: with go's default, 60s, a slow target (a
# layer, a tarball, an OSV database build) spends its whole run minimizing.
# FUZZPARALLEL sets the workers (default: GOMAXPROCS).
set -uo pipefail
cd "$(dirname "$0")/.."

FUZZTIME=${FUZZTIME:-30s}
FUZZMINIMIZETIME=${FUZZMINIMIZETIME:-50x}

# "<target> <package>", one per fuzz target in the repository.
targets=(
  "FuzzParseDistribution ./pkg/webhook"
  "FuzzParseHarbor ./pkg/webhook"
  "FuzzParseECR ./pkg/webhook"
  "FuzzImageLayer ./pkg/scan"
  "FuzzCachedLayer ./pkg/scan"
  "FuzzDecodeLayer ./pkg/scan"
  "FuzzDir ./pkg/layercache"
  "FuzzOpenTarInput ./services/customs/internal/scancmd"
  "FuzzAnalyze ./pkg/scan/analyzer/dpkg"
  "FuzzAnalyze ./pkg/scan/analyzer/apk"
  "FuzzAnalyze ./pkg/scan/analyzer/gobinary"
  "FuzzAnalyze ./pkg/scan/analyzer/osrelease"
  "FuzzWalk ./pkg/archive"
  "FuzzWalkZip ./pkg/archive"
  "FuzzAnalyze ./pkg/scan/analyzer/malware"
  "FuzzAnalyze ./pkg/scan/analyzer/secrets"
  "FuzzAnalyze ./pkg/scan/analyzer/misconfig"
  "FuzzCompile ./pkg/yara"
  "FuzzAnalyze ./pkg/scan/analyzer/yara"
  "FuzzAnalyze ./pkg/scan/analyzer/java"
  "FuzzAnalyze ./pkg/scan/analyzer/composer"
  "FuzzAnalyze ./pkg/scan/analyzer/dotnet"
  "FuzzAnalyze ./pkg/scan/analyzer/gem"
  "FuzzAnalyze ./pkg/scan/analyzer/python"
  "FuzzAnalyze ./pkg/scan/analyzer/npm"
  "FuzzAnalyze ./pkg/scan/analyzer/rust"
  "FuzzAddJSON ./pkg/vulndb"
  "FuzzDebCompare ./pkg/vulndb"
  "FuzzLoad ./pkg/policy"
  "FuzzRule ./pkg/policy"
  "FuzzDecode ./pkg/wire"
  "FuzzDecodeTags ./pkg/wire"
  "FuzzOpenSealed ./pkg/wire"
  "FuzzNormalize ./pkg/report"
  "FuzzLoadBytes ./pkg/ignore"
)

filter=${1:-}
parallel=()
if [ -n "${FUZZPARALLEL:-}" ]; then parallel=(-parallel "$FUZZPARALLEL"); fi

failed=()
ran=0
for t in "${targets[@]}"; do
  if [ -n "$filter" ] && ! grep -qE -- "$filter" <<<"$t"; then
    continue
  fi
  read -r name pkg <<<"$t"
  echo "=== $name $pkg (${FUZZTIME})"
  ran=$((ran + 1))
  if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" \
    -fuzzminimizetime "$FUZZMINIMIZETIME" "${parallel[@]}" "$pkg"; then
    failed+=("$t")
  fi
done

echo "=== $ran targets run, ${#failed[@]} failed"
for t in "${failed[@]}"; do echo "FAILED: $t"; done
[ "${#failed[@]}" -eq 0 ]
