#!/usr/bin/env bash
# Peak memory of the production scanner (cmd/scanner, the binary the Helm
# chart and compose run) on each image: `customs up --workers 0` provides
# NATS, S3, the results API and a registry behind the gate; for each image
# a fresh cmd/scanner process joins it, the image is pushed with crane, and
# once its report is served the scanner's VmHWM (peak RSS) and RssFile (the
# binary's pages) are read from /proc.
#
#   scripts/bench/scanner-rss.sh IMAGE.tar...
#
# Both binaries leave the page cache first (see compare.sh). The scanner
# runs with its defaults (CUSTOMS_SCANNER_MEMORY, GOMEMLIMIT from it) unless
# the environment sets them.
#
# Environment:
#   BENCH_CACHE   default ~/.cache/customs-bench (crane)
set -euo pipefail

# shellcheck source=scripts/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_root
bench_images "$@"
bench_need_curl
bench_crane

tmp=$(mktemp -d "${TMPDIR:-/tmp}/customs-scanner-rss.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do
		kill -INT "$p" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

echo "building customs and scanner..." >&2
go build -o "$tmp/customs" ./services/customs/cmd/customs
go build -o "$tmp/scanner" ./services/scanner/cmd/scanner
for b in "$tmp/customs" "$tmp/scanner"; do
	sync "$b" # dirty pages (a binary just written) are not dropped
	dd if="$b" iflag=nocache count=0 status=none
done

port() {
	local p
	for _ in $(seq 200); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	echo "no free port found" >&2
	return 1
}
wait_ok() { # URL PID: until URL answers 2xx while PID lives
	for _ in $(seq 300); do
		kill -0 "$2" 2>/dev/null || return 1
		curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

reg=127.0.0.1:$(port)
results=127.0.0.1:$(port)
nats=127.0.0.1:$(port)
"$tmp/customs" up --data "$tmp/data" --registry "$reg" --workers 0 --log-level warn \
	--ingest-addr "127.0.0.1:$(port)" --results-addr "$results" --scanner-addr "127.0.0.1:$(port)" \
	--harbor-addr "127.0.0.1:$(port)" --notifier-addr "127.0.0.1:$(port)" \
	--nats-addr "$nats" --s3-addr "127.0.0.1:$(port)" >"$tmp/up.log" 2>&1 &
up=$!
pids+=("$up")
wait_ok "http://$results/readyz" "$up" || {
	tail -n 30 "$tmp/up.log" >&2
	exit 1
}
nats_url=$(grep -o "nats://customs:[^ \"]*@$nats" "$tmp/up.log" | head -n 1)

echo "load: $(uptime)"
echo "cpus: $(nproc)"
printf '%-14s %10s %12s %12s %10s\n' image "scan s" "peak MiB" "file MiB" packages
for image in "${images[@]}"; do
	name=$(basename "$image" .tar)
	saddr=127.0.0.1:$(port)
	CUSTOMS_NATS_URL=$nats_url CUSTOMS_SCANNER_ADDR=$saddr \
		CUSTOMS_REGISTRIES=$reg CUSTOMS_INSECURE_REGISTRIES=$reg \
		CUSTOMS_REPORT_SIGNING_KEY=$(cat "$tmp/data/report-signing.key") CUSTOMS_JOB_KEY=$(cat "$tmp/data/job.key") \
		"$tmp/scanner" >"$tmp/scanner-$name.log" 2>&1 &
	sc=$!
	pids+=("$sc")
	wait_ok "http://$saddr/readyz" "$sc" || {
		tail -n 30 "$tmp/scanner-$name.log" >&2
		exit 1
	}
	digest=$("$CRANE" digest --tarball "$image")
	"$CRANE" push --insecure "$image" "$reg/bench/$name:1" >/dev/null 2>"$tmp/push.log" || {
		cat "$tmp/push.log" >&2
		exit 1
	}
	deadline=$(($(date +%s) + 600))
	until curl -fsS -o "$tmp/report.json" "http://$results/v1/reports/$digest" 2>/dev/null; do
		if [[ $(date +%s) -gt $deadline ]] || ! kill -0 "$sc" 2>/dev/null; then
			echo "$name: no report" >&2
			tail -n 30 "$tmp/scanner-$name.log" >&2
			exit 1
		fi
		sleep 0.1
	done
	took=$(grep -o '"took":[0-9.]*' "$tmp/scanner-$name.log" | head -n 1 | cut -d: -f2)
	read -r hwm file < <(awk '/^VmHWM/ { h = $2 } /^RssFile/ { f = $2 } END { printf "%.1f %.1f\n", h / 1024, f / 1024 }' "/proc/$sc/status")
	printf '%-14s %10.2f %12s %12s %10d\n' "$name" "$(awk -v t="${took:-0}" 'BEGIN { print t / 1000 }')" "$hwm" "$file" \
		"$(grep -o '"purl": *"' "$tmp/report.json" | wc -l)"
	kill -INT "$sc"
	wait "$sc" 2>/dev/null || true
done
