#!/usr/bin/env bash
# System packages for the optional engine tests: clamd and ClamAV's real
# test samples (pkg/clamd, pkg/scan/analyzer/clamav start their own clamd),
# the yara command (libyara), the reference that
# pkg/yara's pure-Go evaluator is compared against, and chromium, the
# headless browser services/results/internal/web's tests drive (chromedp;
# Debian's chromium runs as root with --headless=new --no-sandbox). None
# of them is linked into Customs.
# Debian/Ubuntu, as root, non-interactive, idempotent:
#   - packages already installed are skipped (no apt-get at all when
#     everything is there);
#   - `apt-get update` runs only when a package is unknown to the local
#     package lists;
#   - no virus database is downloaded and no service is left blocking:
#     policy-rc.d forbids starting services during the install, and
#     freshclam's daemon is neither started nor needed (the tests write
#     their own signature database and start their own clamd).
# Without these packages those tests skip (ClamAV: "install clamav-daemon
# (scripts/ci-deps.sh)", the browser tests: "chromium is not on PATH");
# the rest of the suite needs only Go.
set -euo pipefail

pkgs=(clamav-daemon clamav-testfiles yara chromium)

missing=()
for p in "${pkgs[@]}"; do
  if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)" != "installed" ]; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "ci-deps: already installed: ${pkgs[*]}"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    exec sudo -E bash "$0" "$@"
  fi
  echo "ci-deps: must run as root to install: ${missing[*]}" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt_opts=(-y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold --no-install-recommends)

# Refresh the package lists: a fresh machine has none, and old lists
# name versions the mirror no longer serves.
apt-get update -q

# Don't let maintainer scripts start clamav-daemon / clamav-freshclam
# (freshclam would try to download the signature databases). Exit code
# 101 = "action forbidden" (invoke-rc.d(8)). Only our own policy file is
# removed afterwards; an existing one is left alone.
policy=/usr/sbin/policy-rc.d
own_policy=
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 0755 "$policy"
  own_policy=1
fi
cleanup() { if [ -n "$own_policy" ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

apt-get install "${apt_opts[@]}" "${missing[@]}"

command -v clamd >/dev/null 2>&1 || { echo "ci-deps: clamd not on PATH after install" >&2; exit 1; }
command -v chromium >/dev/null 2>&1 || { echo "ci-deps: chromium not on PATH after install" >&2; exit 1; }
echo "ci-deps: installed: ${missing[*]} ($(clamd --version 2>/dev/null || true))"
