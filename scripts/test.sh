#!/usr/bin/env bash
# The test command: formatting, vet and every module's tests, on real
# in-process servers (NATS, S3, registry); then the proto checks.
# Needs only Go: every server a test uses is started by the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

modules=(./proto ./pkg ./services/ingest ./services/scanner ./services/results ./services/gate ./services/notifier ./services/harbor ./services/customs)

unformatted=$(gofmt -l proto pkg services deploy | grep -v '\.pb\.go$' || true)
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

pkgs=()
for m in "${modules[@]}"; do pkgs+=("$m/..."); done
go vet "${pkgs[@]}"
# -p 2: the machines have 2 cores; the end-to-end tests start servers.
go test -p 2 -count=1 -timeout 15m "$@" "${pkgs[@]}"

# Each module also builds alone (its replace lines), outside the workspace.
for m in "${modules[@]}"; do
  (cd "$m" && GOWORK=off go build ./...)
done

# deploy/deploytest (the Helm chart, alert rules and dashboard checks) is a
# module outside go.work: Helm, the Kubernetes API and Prometheus would
# otherwise raise shared dependencies (otel, grpc, x/net) for every service
# built in the workspace, the Docker images included. Its replace lines
# point at this tree.
(cd deploy/deploytest && GOWORK=off go vet ./... && GOWORK=off go test -p 2 -count=1 -timeout 10m "$@" ./...)


# buf lint, buf breaking against main, and generated code up to date.
bash scripts/buf.sh check
