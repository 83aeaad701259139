"""The TLS scenarios, one per module: run(params) does the work and emits a
result record (see tls/scenario.py)."""
