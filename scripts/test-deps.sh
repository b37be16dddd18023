#!/usr/bin/env bash
# Installs what `npm test` needs beyond npm packages, when it is missing: redis-server (the
# task-state tests start their own, on a free loopback port), h2load from nghttp2-client (the
# load benchmark's smoke test) and valgrind (the instruction count's smoke test). Runs as npm's pretest step, so `npm test` is the one command.
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v h2load >/dev/null 2>&1 || missing+=(nghttp2-client)
command -v valgrind >/dev/null 2>&1 || missing+=(valgrind)
((${#missing[@]})) || exit 0

if [ "$(id -u)" = 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  echo "npm test needs ${missing[*]} (Debian/Ubuntu: apt-get install ${missing[*]}); run as root or install them first" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "npm test needs ${missing[*]}; this script installs them with apt-get, which this machine lacks: install them with your package manager" >&2
  exit 1
fi
echo "installing ${missing[*]} for the tests (apt-get)" >&2
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
