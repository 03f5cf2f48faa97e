#!/usr/bin/env bash
# Lint, breaking-check and generate the protobuf schema in proto/.
#
# Usage:
#   scripts/buf.sh            # buf lint + buf breaking (vs main, when main has proto/buf.yaml)
#   scripts/buf.sh generate   # same, then regenerate proto/gen/go
#   scripts/buf.sh check      # same, then fail if committed proto/gen differs from a fresh generate
#
# Environment:
#   BUF                  command used to run buf (default: go run github.com/bufbuild/buf/cmd/buf@v1.75.0)
#   PROTOC_GEN_GO_VERSION  protoc-gen-go version to install if not on PATH (default: v1.36.12)
set -euo pipefail

BUF_VERSION=v1.75.0
PROTOC_GEN_GO_VERSION="${PROTOC_GEN_GO_VERSION:-v1.36.12}"
BUF="${BUF:-go run github.com/bufbuild/buf/cmd/buf@${BUF_VERSION}}"

MODE="${1:-}"
case "${MODE}" in
  "" | generate | check) ;;
  *)
    echo "usage: $0 [generate|check]" >&2
    exit 2
    ;;
esac

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROTO_DIR="${ROOT}/proto"
cd "${PROTO_DIR}"

TMP=""
cleanup() { if [[ -n "${TMP}" ]]; then rm -rf "${TMP}"; fi; }
trap cleanup EXIT
tmpdir() { if [[ -z "${TMP}" ]]; then TMP="$(mktemp -d)"; fi; }

# shellcheck disable=SC2086 # BUF may be a multi-word command.
buf() { ${BUF} "$@"; }

# Make a protoc-gen-go of the pinned version available on PATH. An existing one
# on PATH is used only when it reports the pinned version.
ensure_protoc_gen_go() {
  if command -v protoc-gen-go >/dev/null 2>&1 \
    && [[ "$(protoc-gen-go --version 2>/dev/null)" == "protoc-gen-go ${PROTOC_GEN_GO_VERSION}" ]]; then
    return
  fi
  tmpdir
  echo "installing protoc-gen-go ${PROTOC_GEN_GO_VERSION} into a temp GOBIN" >&2
  GOBIN="${TMP}/bin" go install "google.golang.org/protobuf/cmd/protoc-gen-go@${PROTOC_GEN_GO_VERSION}"
  export PATH="${TMP}/bin:${PATH}"
}

echo "buf lint" >&2
buf lint

if git -C "${ROOT}" cat-file -e main:proto/buf.yaml 2>/dev/null; then
  echo "buf breaking against main" >&2
  buf breaking --against "${ROOT}/.git#branch=main,subdir=proto"
else
  echo "buf breaking skipped: main has no proto/buf.yaml yet" >&2
fi

case "${MODE}" in
  "")
    ;;
  generate)
    ensure_protoc_gen_go
    echo "buf generate" >&2
    buf generate
    ;;
  check)
    ensure_protoc_gen_go
    tmpdir
    # Generate from a copy of the module so the working tree is not touched,
    # then compare the fresh output with proto/gen.
    mkdir -p "${TMP}/proto"
    cp buf.yaml buf.gen.yaml "${TMP}/proto/"
    if [[ -f buf.lock ]]; then cp buf.lock "${TMP}/proto/"; fi
    while IFS= read -r -d '' f; do
      install -D -m 0644 "${f}" "${TMP}/proto/${f}"
    done < <(find . -path ./gen -prune -o -name '*.proto' -print0)
    echo "buf generate (into temp copy)" >&2
    (cd "${TMP}/proto" && buf generate)
    if ! diff -r "${PROTO_DIR}/gen" "${TMP}/proto/gen"; then
      echo "proto/gen is stale: run scripts/buf.sh generate" >&2
      exit 1
    fi
    echo "proto/gen is up to date" >&2
    ;;
esac
