"""The outbox: what chat-bff tells the operator's backend, as signed webhooks delivered at
least once through the bus's durable queue.

`webhooks` enqueues under a kind's quota and runs one supervised delivery worker per kind
(`signing`: Standard Webhooks signatures and the envelope). Three producers put into it:
`push` (agent messages nobody saw, for apps in the background), `offline` (leave-a-message,
and availability: `hours` first, then the upstream's health) and `survey` (post-chat
ratings). Nothing here polls the upstream or knows HTTP routing; it reads what the bus and
the upstream's health record hold.
"""
