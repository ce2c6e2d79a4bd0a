# shellcheck shell=bash
# sha256 records for cached binaries: a cache entry is used only while every file still has
# the hash recorded when it was built, so a truncated or overwritten binary is rebuilt
# instead of failing later inside the engine.
#
#   checksum_record SUMS FILE...   record (or replace) the hashes of FILEs in SUMS
#   checksum_ok SUMS FILE...       true when every FILE exists and matches its recorded hash
# FILEs are named relative to the directory of SUMS.

checksum_record() {
  local sums="$1"; shift
  local dir; dir="$(dirname "$sums")"
  local f kept
  touch "$sums"
  for f in "$@"; do
    kept="$(awk -v f="$f" '$2 != f' "$sums")"
    { [ -n "$kept" ] && printf '%s\n' "$kept"; (cd "$dir" && sha256sum "$f"); } > "$sums.tmp"
    mv "$sums.tmp" "$sums"
  done
}

checksum_ok() {
  local sums="$1"; shift
  local dir; dir="$(dirname "$sums")"
  local f want have
  [ -f "$sums" ] || return 1
  for f in "$@"; do
    want="$(awk -v f="$f" '$2 == f {print $1}' "$sums")"
    [ -n "$want" ] && [ -f "$dir/$f" ] || return 1
    have="$(cd "$dir" && sha256sum "$f" | cut -d' ' -f1)"
    [ "$have" = "$want" ] || return 1
  done
}
