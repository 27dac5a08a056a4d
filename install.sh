#!/usr/bin/env bash
# Builds hoop and hoop-agent from this checkout and installs them.
#   ./install.sh [--prefix DIR]     (binaries go to DIR/bin; default ~/.local)
set -euo pipefail
cd "$(dirname "$0")"

prefix="${HOME}/.local"
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix="${2:?--prefix needs a directory}"; shift 2 ;;
    --prefix=*) prefix="${1#--prefix=}"; shift ;;
    -h|--help) sed -n '2,3p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument: $1 (try --help)" >&2; exit 2 ;;
  esac
done

if ! command -v cargo >/dev/null 2>&1; then
  echo "install.sh: cargo not found. Install Rust from https://rustup.rs, then run this again." >&2
  exit 1
fi

echo "Building hoop and hoop-agent (release; this takes a few minutes)..."
cargo build --release --locked -p hoop-cli -p hoop-agent

bindir="${prefix}/bin"
mkdir -p "$bindir"
install -m 0755 target/release/hoop target/release/hoop-agent "$bindir/"
echo
echo "Installed:"
echo "  $bindir/hoop"
echo "  $bindir/hoop-agent"
case ":${PATH}:" in
  *":${bindir}:"*) ;;
  *) echo; echo "Note: $bindir is not on your PATH. Add it with:"; echo "  export PATH=\"$bindir:\$PATH\"" ;;
esac
echo
echo "Next: set up an agent (see README.md, 'Quick start'):"
echo "  hoop-agent init --data-dir ./agent-data --san \$(hostname)"
echo "  hoop-agent run --config agent.toml"
