#!/usr/bin/env bash
# Push-to-report latency of `customs up`:
#
#  1. BenchmarkPushToReport (services/customs/bench_test.go): in-process
#     stack, a small Debian-like image per iteration (BENCHTIME, default 20x).
#  2. The real `customs up --registry ADDR` binary and the ~50 MB Debian 12
#     tarball from debian-image.sh pushed with `crane push --insecure`; the
#     results API is polled with curl until 200. UP_RUNS runs (default 3),
#     each against a fresh `customs up` (empty data dir, so every push
#     uploads all blobs and every digest is new to Customs).
#
#   scripts/bench/push-to-report.sh [IMAGE.tar]
#
# Environment:
#   BENCHTIME=20x      go test -benchtime
#   UP_RUNS=3          runs of part 2; 0 skips it
#   SKIP_GO_BENCH=1    skip part 1
#   REGISTRY_ADDR      default 127.0.0.1:5000 (a free port when 5000 is taken)
#   BENCH_CACHE        default ~/.cache/customs-bench (image, crane)
set -euo pipefail

# shellcheck source=scripts/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_root
BENCHTIME=${BENCHTIME:-20x}
UP_RUNS=${UP_RUNS:-3}

bench_image_arg "$@"

echo "load: $(uptime)"
echo "cpus: $(nproc)"

if [[ ${SKIP_GO_BENCH:-0} != 1 ]]; then
	echo
	echo "== BenchmarkPushToReport (in-process customs up, small Debian-like image) =="
	(cd services/customs && go test -run '^$' -bench PushToReport -benchtime "$BENCHTIME" .)
fi

[[ $UP_RUNS -gt 0 ]] || exit 0

echo
echo "== customs up binary, crane push of $IMAGE =="
bench_need_image "$@"
bench_need_curl

bench_crane

tmp=$(mktemp -d "${TMPDIR:-/tmp}/customs-p2r.XXXXXX")
up_pid=
stop_up() {
	if [[ -n $up_pid ]]; then
		kill -INT "$up_pid" 2>/dev/null || true
		for _ in $(seq 100); do kill -0 "$up_pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$up_pid" 2>/dev/null || true
		wait "$up_pid" 2>/dev/null || true
		up_pid=
	fi
}
trap 'stop_up; rm -rf "$tmp"' EXIT

go build -o "$tmp/customs" ./services/customs/cmd/customs

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
	local p
	for _ in $(seq 200); do
		p=$((20000 + RANDOM % 40000))
		if port_free "$p"; then
			echo "$p"
			return
		fi
	done
	echo "no free port found" >&2
	return 1
}
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

digest=$("$CRANE" digest --tarball "$IMAGE")
size=$(bench_mb "$(stat -c %s "$IMAGE")")
echo "image digest $digest ($size MiB)"

totals=() reports=()
for ((run = 1; run <= UP_RUNS; run++)); do
	reg=${REGISTRY_ADDR:-127.0.0.1:5000}
	if [[ -z ${REGISTRY_ADDR:-} ]] && ! port_free "${reg##*:}"; then
		reg=127.0.0.1:$(free_port)
	fi
	results=127.0.0.1:$(free_port)
	data=$tmp/data$run
	"$tmp/customs" up --data "$data" --registry "$reg" --log-level warn \
		--ingest-addr "127.0.0.1:$(free_port)" --results-addr "$results" \
		--scanner-addr "127.0.0.1:$(free_port)" --nats-addr "127.0.0.1:$(free_port)" \
		--s3-addr "127.0.0.1:$(free_port)" >"$tmp/up$run.log" 2>&1 &
	up_pid=$!
	ready=0
	for _ in $(seq 300); do
		kill -0 "$up_pid" 2>/dev/null || break
		if curl -fsS -o /dev/null "http://$results/readyz" 2>/dev/null &&
			curl -fsS -o /dev/null "http://$reg/v2/" 2>/dev/null; then
			ready=1
			break
		fi
		sleep 0.1
	done
	if [[ $ready != 1 ]]; then
		echo "customs up did not become ready:" >&2
		tail -n 30 "$tmp/up$run.log" >&2
		exit 1
	fi

	t0=$(now)
	"$CRANE" push --insecure "$IMAGE" "$reg/bench/debian:12" >/dev/null 2>"$tmp/push.log" || {
		cat "$tmp/push.log" >&2
		exit 1
	}
	t1=$(now)
	code=
	deadline=$(($(date +%s) + 300))
	while :; do
		code=$(curl -s -o "$tmp/report.json" -w '%{http_code}' "http://$results/v1/reports/$digest" || true)
		[[ $code == 200 ]] && break
		if [[ $code != 404 || $(date +%s) -gt $deadline ]]; then
			echo "GET report: HTTP $code" >&2
			tail -n 30 "$tmp/up$run.log" >&2
			exit 1
		fi
		sleep 0.02
	done
	t2=$(now)

	status=$(grep -o '"status": *"[a-z]*"' "$tmp/report.json" | head -n 1 | grep -o '"[a-z]*"$' | tr -d '"' || true)
	npkgs=$(grep -o '"purl": *"' "$tmp/report.json" | wc -l)
	rss=$(awk '/^VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$up_pid/status" 2>/dev/null || echo "?")
	printf 'run %d  push %6.2f s  push-to-report %6.2f s  report after push %6.2f s  status %s  packages %d  customs up peak RSS %s MiB\n' \
		"$run" "$(secs "$t0" "$t1")" "$(secs "$t0" "$t2")" "$(secs "$t1" "$t2")" "$status" "$npkgs" "$rss"
	totals+=("$(secs "$t0" "$t2")")
	reports+=("$(secs "$t1" "$t2")")
	stop_up
	rm -rf "$data"
done

median() { printf '%s\n' "$@" | bench_median; }
echo "median push-to-report $(median "${totals[@]}") s, report after push $(median "${reports[@]}") s ($UP_RUNS runs)"
echo "load after: $(uptime)"
