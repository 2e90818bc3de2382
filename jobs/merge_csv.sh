#!/bin/sh
# Merge sweep CSVs (e.g. the per-task files of a Slurm job array) into one.
#
#   jobs/merge_csv.sh OUT.csv IN1.csv [IN2.csv ...]
#
# - Every input must start with exactly the header of the first input;
#   an input with another header (another schema version, another tool) is
#   refused and nothing is written.
# - The header is written once; rows keep their input order; a row that is
#   an exact duplicate of an earlier one (the same file merged twice, a
#   task rerun) is dropped. Rows that differ in any cell are both kept:
#   two measurements of the same configuration are data, not duplicates.
# - A row whose number of fields differs from the header's (a partial or
#   corrupt line) is refused with its file and line number. Fields may be
#   quoted ("a, b"), as RFC 4180 allows.
# - OUT is written to a temporary file next to it and moved into place, so
#   a reader never sees half a file, and OUT may also be one of the inputs.
# Plain POSIX sh and awk; no other dependencies.
set -eu

me=merge_csv
usage() { echo "usage: $0 OUT.csv IN1.csv [IN2.csv ...]" >&2; exit 2; }
[ $# -ge 2 ] || usage
out=$1
shift

for f in "$@"; do
  [ -f "$f" ] && [ -r "$f" ] || { echo "$me: cannot read input $f" >&2; exit 1; }
  [ -s "$f" ] || { echo "$me: input $f is empty (not even a header)" >&2; exit 1; }
done
header=$(head -n 1 "$1")
for f in "$@"; do
  h=$(head -n 1 "$f")
  if [ "$h" != "$header" ]; then
    echo "$me: header of $f differs from the header of $1; refusing to merge." >&2
    echo "$me:   $1: $(printf '%s' "$header" | cut -c1-120)..." >&2
    echo "$me:   $f: $(printf '%s' "$h" | cut -c1-120)..." >&2
    exit 1
  fi
done

# Temporary file in OUT's folder, so the final mv is a rename on one file system.
tmp="$out.merge.$$"
trap 'rm -f "$tmp"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
(umask 022 && : >"$tmp")

awk -v me="$me" '
  # Number of fields in a CSV line, honouring "quoted, fields" and "" escapes.
  # Returns -1 when a quote is left open (a cut-off line).
  function nfields(line,   n, i, c, q) {
    n = 1; q = 0
    for (i = 1; i <= length(line); i++) {
      c = substr(line, i, 1)
      if (c == "\"") q = !q
      else if (c == "," && !q) n++
    }
    return q ? -1 : n
  }
  FNR == 1 {
    if (NR == 1) { want = nfields($0); print; }
    next
  }
  {
    sub(/\r$/, "")
    if ($0 == "") next
    n = nfields($0)
    if (n < 0) {
      printf "%s: %s line %d ends inside a quoted field (a partial row?); refusing to merge.\n", me, FILENAME, FNR > "/dev/stderr"
      bad = 1; exit 1
    }
    if (n != want) {
      printf "%s: %s line %d has %d fields, the header has %d (a partial row?); refusing to merge.\n", me, FILENAME, FNR, n, want > "/dev/stderr"
      bad = 1; exit 1
    }
    if (!seen[$0]++) { print; kept++ } else dropped++
  }
  END {
    if (bad) exit 1
    printf "%s: %d rows written, %d exact duplicates dropped\n", me, kept, dropped > "/dev/stderr"
  }
' "$@" >"$tmp"

mv -f "$tmp" "$out"
trap - EXIT
echo "$me: wrote $out from $# file(s)" >&2
