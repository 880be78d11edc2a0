"""The upstream: the contact center's Customer Chat API and what its answers mean.

`client` is the only module that speaks to it (`wire`: the connections under it; `parse`: an
answer's raw parts; `transcript`: what a snapshot means, normalised); `health` is this
process's record of how it has been answering. Nothing here knows HTTP clients of ours, the
bus or chats' schedules: it imports only the base modules (errors, models).
"""
