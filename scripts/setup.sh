#!/usr/bin/env bash
# Installs the Debian 12 packages the build, the tests, the sanitizer and fuzzing builds and
# the benchmarks need (only the missing ones), then configures and builds into build/. Safe to
# run again. With --packages-only it stops after the packages (scripts/sanitize.sh, fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  cmake ninja-build g++ pkg-config
  libcaf-dev libcpp-httplib-dev libssl-dev libboost-json1.81-dev
  libsqlitecpp-dev libsqlite3-dev zlib1g-dev catch2
  libspdlog-dev libfmt-dev libcli11-dev libtomlplusplus-dev
  openssl python3 sqlite3 curl
  nginx-light libnginx-mod-stream
  clang-14 libclang-rt-14-dev
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

[ "${1:-}" = "--packages-only" ] && exit 0

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" >/dev/null
cmake --build build -j "$(nproc)"
