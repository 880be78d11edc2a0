"""The request edge: what every request passes through before a route, and the guards routes
apply.

Below HTTP, `serving` bounds the request line, headers and body in time and size. Then the
middleware, outermost first: `access` (request id, access log), `ports` (the internal port),
`guard`'s `ResponsePolicy` (Cache-Control), `cors` (origins), `paths` (trailing slashes),
`guard`'s `ApiGuard` (413/415), `idempotency` (`Idempotency-Key`, its rules in
`idempotency_keys`). Routes use `limits` (rates and caps) and `clients` (who the client is,
behind `proxy_trust`); `error_handlers` answers failures, `static_files` serves the widget.
Nothing here knows chats, the upstream or the outbox: it imports only the base modules and
the bus's guard roles.
"""
