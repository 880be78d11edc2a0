"""The public API's description: what clients send and read, and the documents that show it.

`bodies` validates what clients send (chat operations, a left message, a survey), `answers`
documents what they read (the chat, its messages, errors, availability, the stream's event
payloads), `openapi` completes `/openapi.json` and `docs` serves `/docs` and `/redoc`. The
routes implement it; nothing here has behaviour beyond validation, and it imports only the
event vocabulary.
"""
