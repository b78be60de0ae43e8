"""What the processes report about themselves: Prometheus metrics with /healthz and /readyz, structured
logs, and the `finsent status` summary.

May import the libraries (`connectors`, `models`, `alerts`) and `pipeline.settings`; no other part of
`pipeline`, since every one of them reports through it.
"""
