#!/usr/bin/env bash
# Installs what Orion needs on a fresh Debian-like machine, idempotently:
#   - Deno, pinned, from npm (JSR and dl.deno.land may be unreachable; the npm registry is not);
#   - Mesa's Vulkan drivers (lavapipe), the software WebGPU adapter used where no GPU exists;
#   - the npm dependencies named in deno.json / deno.lock (into node_modules/, and into Deno's npm cache for
#     the bundle and URL imports).
# Usage: bash scripts/setup.sh        (quiet when everything is already there)
set -euo pipefail
DENO_VERSION=2.9.6
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
log() { echo "[setup] $*" >&2; }
sudo_if() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else "$@"; fi; }

if ! command -v deno >/dev/null || ! deno --version 2>/dev/null | head -1 | grep -q " $DENO_VERSION "; then
  log "installing deno@$DENO_VERSION from npm"
  sudo_if npm install -g --silent "deno@$DENO_VERSION" >&2
fi

# A WebGPU adapter: a real GPU's Vulkan driver, or Mesa's lavapipe. Install lavapipe when no Vulkan ICD exists.
if ! ls /usr/share/vulkan/icd.d/*.json >/dev/null 2>&1 && ! ls /etc/vulkan/icd.d/*.json >/dev/null 2>&1; then
  if command -v apt-get >/dev/null; then
    log "installing mesa-vulkan-drivers (software WebGPU adapter)"
    export DEBIAN_FRONTEND=noninteractive
    sudo_if apt-get install -y -q mesa-vulkan-drivers >/dev/null 2>&1 ||
      { sudo_if apt-get update -q >/dev/null 2>&1 && sudo_if apt-get install -y -q mesa-vulkan-drivers >/dev/null; }
  else
    log "warning: no Vulkan driver and no apt-get; install Mesa's Vulkan drivers (lavapipe) by hand"
  fi
fi

if [ ! -d node_modules/.deno ] || [ deno.lock -nt node_modules/.deno ]; then
  log "installing npm dependencies (deno install --frozen)"
  deno install --frozen --quiet >&2
  touch node_modules/.deno
fi

# Deno's own npm cache, resolved as a project importing Orion by URL (or the bundle, dist/orion.js) resolves
# it: without this repository's lockfile or node_modules/. `deno install` above fills node_modules/ only.
# Fast and offline-safe when everything is cached; reports only when it downloaded something.
if ! npm_cache_log=$(deno cache --no-lock --node-modules-dir=none mod.ts 2>&1); then
  echo "$npm_cache_log" >&2
  exit 1
fi
if grep -q "Download" <<<"$npm_cache_log"; then log "filled Deno's npm cache (for the bundle and URL imports)"; fi
