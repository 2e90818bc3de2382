#!/bin/sh
# Print the sweep CSV header that docs/csv-schema.md defines, as one
# comma-separated line, in the document's column order; with --version, the
# schema version from the document's title ("# Sweep CSV schema (version N)").
#
#   integration/slurm/schema_header.sh [--version] [path/to/csv-schema.md]
#
# The schema document is the single source of truth: the e2e test compares
# the CSVs' first line with this output, and the stand-in sweep writes it.
# Only the first table (the sweep CSV) is read; the raw-samples section after
# it is ignored. A cell like "step_us_median, step_us_p10" names several
# columns.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
want=header
if [ "${1:-}" = --version ]; then want=version; shift; fi
doc=${1:-$here/../../docs/csv-schema.md}
[ -r "$doc" ] || { echo "schema_header: cannot read $doc" >&2; exit 2; }
if [ "$want" = version ]; then
  v=$(sed -n '1s/.*(version \([0-9][0-9]*\)).*/\1/p' "$doc")
  [ -n "$v" ] || { echo "schema_header: no version in the title of $doc" >&2; exit 1; }
  echo "$v"; exit 0
fi
awk '
  /^## / && seen { exit }                 # the next section ends the table
  /^\| *column *\|/ { seen = 1; next }    # the table header row
  seen && /^\|/ {
    cell = $0
    sub(/^\| */, "", cell); sub(/ *\|.*$/, "", cell)
    if (cell ~ /^-+$/) next               # the |---|---| separator
    n = split(cell, names, / *, */)
    for (i = 1; i <= n; i++) out = out (out == "" ? "" : ",") names[i]
  }
  END { if (out == "") exit 1; print out }
' "$doc"
