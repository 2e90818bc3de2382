"""Sweep CSVs (docs/csv-schema.md) → Markdown report with PNG figures.

Modules, one concept each:
  io       read, validate and merge sweep CSVs and raw samples files
  tables   the report's tables (pandas DataFrames)
  model    the performance model, hardware presets and the paper's shapes
  figures  PNG figures (matplotlib, Agg backend)
  report   the Markdown report
  cli      `python -m analysis report ...`
"""
