# Sourced by the .ci scripts: fetch_package SPEC DIR fetches the npm package SPEC with
# `npm pack` and unpacks it into DIR (a cache entry), replacing DIR only once it is complete.
fetch_package() {
  local spec=$1 into=$2 tmp status
  mkdir -p "$(dirname "$into")" || return 1
  tmp=$(mktemp -d "$(dirname "$into")/fetch.XXXXXX") || return 1
  if ! (cd "$tmp" && npm pack "$spec" > pack.log 2>&1); then
    cat "$tmp/pack.log" >&2
    rm -rf "$tmp"
    return 1
  fi
  mkdir -p "$tmp/unpacked" && tar -xzf "$tmp"/*.tgz -C "$tmp/unpacked" || { rm -rf "$tmp"; return 1; }
  rm -rf "$into" && mv "$tmp/unpacked/package" "$into"
  status=$?
  rm -rf "$tmp"
  return $status
}
