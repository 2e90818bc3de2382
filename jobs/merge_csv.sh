#!/bin/sh
# Merge sweep CSVs (e.g. the per-task files of a Slurm job array) into one.
#
#   jobs/merge_csv.sh OUT.csv IN1.csv [IN2.csv ...]
#
# - Every input must start with exactly the header of the first input;
#   an input with another header (another schema version, another tool) is
#   refused and nothing is written.
# - The header is written once; rows keep their input order; a row that is
#   an exact duplicate of an earlier one (the same file merged twice) is
#   dropped.
# - Sweep CSVs (their header has the resume-key columns of
#   docs/resume-key.txt and tp_group): two different rows of one
#   configuration (the same resume key and TP group) are refused, naming
#   both files and lines: they come from task files of two array shapes
#   (an array of 4, then a rerun with 2) or from two runs of one grid, and
#   keeping both would count a configuration twice. Rows of different array
#   shapes (column array_count) are refused for the same reason. Raw
#   samples files have no such key and are merged as they are.
# - A row whose number of fields differs from the header's (a partial or
#   corrupt line) is refused with its file and line number. Fields may be
#   quoted ("a, b"), as RFC 4180 allows.
# - OUT is written to a temporary file next to it and moved into place, so
#   a reader never sees half a file, and OUT may also be one of the inputs.
# Plain POSIX sh and awk; no other dependencies.
set -eu

me=merge_csv
# The resume key's columns, written once for the harness, this script and the analysis.
keyfile=${MLRA_RESUME_KEY:-$(dirname "$0")/../docs/resume-key.txt}
[ -r "$keyfile" ] || { echo "$me: cannot read the resume key $keyfile" >&2; exit 1; }
keys=$(grep -v '^[[:space:]]*#' "$keyfile" | tr -s ' \n' '  ')
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

awk -v me="$me" -v keys="$keys tp_group" '
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
  # Splits a CSV line into f[1..n] (quotes removed, "" unescaped); returns n.
  function csvsplit(line, f,   n, i, c, q, cur) {
    n = 0; q = 0; cur = ""
    for (i = 1; i <= length(line); i++) {
      c = substr(line, i, 1)
      if (q) {
        if (c == "\"" && substr(line, i + 1, 1) == "\"") { cur = cur c; i++ }
        else if (c == "\"") q = 0
        else cur = cur c
      } else if (c == "\"") q = 1
      else if (c == ",") { f[++n] = cur; cur = "" }
      else cur = cur c
    }
    f[++n] = cur
    return n
  }
  FNR == 1 {
    if (NR == 1) {
      want = nfields($0); print
      sub(/\r$/, "")
      n = csvsplit($0, h)
      for (i = 1; i <= n; i++) col[h[i]] = i
      nk = split(keys, kn, " "); keyed = 1
      for (i = 1; i <= nk; i++) if (!(kn[i] in col)) keyed = 0
      shapecol = ("array_count" in col) ? col["array_count"] : 0
    }
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
    if (seen[$0]++) { dropped++; next }
    if (keyed || shapecol) csvsplit($0, f)
    if (shapecol) {
      if (shape == "") { shape = f[shapecol]; shapefrom = FILENAME }
      else if (f[shapecol] != shape) {
        printf "%s: %s line %d is from an array of %s tasks, %s from an array of %s (array_count): task files of two array shapes; refusing to merge. Merge the files of one array only.\n", me, FILENAME, FNR, f[shapecol], shapefrom, shape > "/dev/stderr"
        bad = 1; exit 1
      }
    }
    if (keyed) {
      k = ""
      for (i = 1; i <= nk; i++) k = k SUBSEP f[col[kn[i]]]
      if (k in where) {
        printf "%s: %s line %d measures the same configuration (resume key and tp_group) as %s; refusing to merge two measurements of one configuration. Merge the files of one array only.\n", me, FILENAME, FNR, where[k] > "/dev/stderr"
        bad = 1; exit 1
      }
      where[k] = FILENAME " line " FNR
    }
    print; kept++
  }
  END {
    if (bad) exit 1
    printf "%s: %d rows written, %d exact duplicates dropped\n", me, kept, dropped > "/dev/stderr"
  }
' "$@" >"$tmp"

mv -f "$tmp" "$out"
trap - EXIT
echo "$me: wrote $out from $# file(s)" >&2
