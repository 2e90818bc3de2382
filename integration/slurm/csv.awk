# csvsplit(line, f): splits one CSV line into f[1..n], honouring double quotes
# ("" inside quotes is a quote); returns n, or -1 when a quote is left open (a
# torn row). Shared by slurm_e2e.sh and stand_in_mlra.sh, which load it with
# `awk -f csv.awk -f PROGRAM` (Debian's mawk has no -e).
function csvsplit(line, f,   n, i, c, q, cur) {
  n = 0; cur = ""; q = 0
  for (i = 1; i <= length(line); i++) {
    c = substr(line, i, 1)
    if (q) { if (c == "\"") { if (substr(line, i + 1, 1) == "\"") { cur = cur c; i++ } else q = 0 } else cur = cur c }
    else if (c == "\"") q = 1
    else if (c == ",") { f[++n] = cur; cur = "" }
    else cur = cur c
  }
  f[++n] = cur
  return q ? -1 : n
}
