"""What the tests and the bench share to run chat-bff for real: servers on free loopback ports
(`servers`: chat-bff, the emulator), Redis (`redis`: the shared one, a private server;
`topologies`: Sentinel groups and Clusters), an SSE viewer (`sse`), the emulator's control API
(`emulator`) and a customer's calls (`chats`).

Shipped in neither the wheel nor the image. It must not import `tests` or `bench`, nor pytest:
the tests turn a missing component into a skip or a failure, the bench into an error.
"""
