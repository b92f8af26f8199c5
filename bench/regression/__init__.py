"""Regression tracking over time (lineage tags on MLflow runs: `bench.lineage`): the runs in a store (`store`), the
baseline a run is gated against (`baseline`), noise-aware gate margins (`noise`) and metric histories with
bands (`history`); `reports.history` renders the trend report."""
