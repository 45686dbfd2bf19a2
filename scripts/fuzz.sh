#!/usr/bin/env bash
# Runs the frame/header decoder fuzz target for a bounded time (default 60 s).
# Usage: scripts/fuzz.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "installing cargo-fuzz (once)..."
  cargo install cargo-fuzz --locked
fi
# cargo-fuzz passes -Z flags to rustc; RUSTC_BOOTSTRAP lets the stable toolchain accept them.
export RUSTC_BOOTSTRAP=1
mkdir -p fuzz/corpus/frame_decode
cargo fuzz run frame_decode fuzz/corpus/frame_decode -- -max_total_time="$secs" -rss_limit_mb=2048
