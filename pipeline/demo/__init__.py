"""`make demo`: the end-to-end demo on embedded defaults, with its hand-written sample headlines.

May import `pipeline.settings`, `pipeline.telemetry`, `pipeline.service` and `pipeline.devstack`.
"""
