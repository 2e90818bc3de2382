"""Sweep CSVs (docs/csv-schema.md) → Markdown report with PNG figures.

Modules, one concept each:
  io       read, validate and merge sweep CSVs and raw samples files
  stats    medians and ratios with bootstrap intervals over repeats and steps
  tables   the report's tables (pandas DataFrames with what they hold fixed)
  summary  the report's opening sentences
  model    the performance model, hardware presets and the paper's shapes
  figures  PNG figures (matplotlib, Agg backend)
  report   the Markdown report
  cli      `python -m analysis report ...`
"""
