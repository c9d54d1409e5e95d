"""Shared foundations: errors, audio I/O, device, model holder, progress, provenance, names, options, the XTTS model catalogue."""
