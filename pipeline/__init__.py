"""The running service and its command line, one subpackage per job; `settings` is read by them all.

`pipeline` may import `connectors`, `models` and `alerts`; nothing imports `pipeline`. Inside it
(enforced by `tests/test_layering.py`): `settings` imports no other part; `telemetry` and
`devstack` only `settings`; `service` adds `telemetry`; `jobs` adds `service`; `web` only
`settings` and `telemetry`; `demo` adds `service` and `devstack`; only `cli` imports everything,
and nothing imports `cli`.
"""
