"""Benchmarks: ``python -m bench`` runs them all, prints a table and saves JSON in bench/results/."""
