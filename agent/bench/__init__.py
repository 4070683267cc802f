"""Benchmarks of strategies: sweeps of strategies × problems × seeds × budgets × batch sizes.

``spec`` reads the sweep YAML, ``problems`` and ``datasets`` build what a run evaluates, ``runner`` runs one
run into rows of the tidy table, ``sweep`` runs them all (in parallel, resumable) and ``metrics`` aggregates.
"""
