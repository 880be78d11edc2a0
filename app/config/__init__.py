"""Configuration: every `BFF_*` setting, read once at startup.

`settings` holds `Settings` (flat: one field per variable) and the strict environment; its
groups are in `parts` (the service's parts), `edge` (the request edge, idempotency, logs) and
`hooks` (push, hours, leave-a-message, surveys, the outbox). Only the frame (`main`, `build`,
`cli`) reads it; every default a component owns is read from that component.
"""
