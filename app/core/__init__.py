"""The chat core: each chat polled once for the fleet, and its transcript served to readers.

`service` runs customers' operations over the cache and the upstream; `registry` keeps this
instance's pollers (interest, leases, takeover, drain) and `poller` polls one chat on the
`schedule` (`turn`: the chat's recent events; `fleet_view`: the fleet's reply and join times);
`sse` streams a chat to one connection, `admission` gates every held connection, and `handles`
turns a chat handle into a `ChatRef` and back. It speaks to the upstream only through
`app.upstream.client`, to other instances only through the bus, and uses the edge's tools
(limits, the server's abort extension) without knowing HTTP middleware.
"""
