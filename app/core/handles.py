"""Chat handles: the one identity of a chat a client holds.

Owns sealing upstream chat ids into opaque handles (AES-256-GCM under keys derived from
`BFF_SECRET_KEY`, several keys for rotation), opening them into a `ChatRef` and the chat key
used on the bus. (Who a client is: `app/edge/clients.py`; origins: `app/edge/cors.py`.) It
must not log or return an upstream id, a key, or anything derived from a key other than a
handle.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.errors import ChatNotFoundError
from app.models import MAX_UPSTREAM_ID_BYTES, ChatRef

_VERSION = b"\x01"
_NONCE_BYTES = 12
_KEY_ID_BYTES = 4
_AAD = b"chat-bff handle v1"
# version + key id + nonce + tag, plus 1..MAX id bytes, base64url without padding.
_MIN_HANDLE = (1 + _KEY_ID_BYTES + _NONCE_BYTES + 16 + 1) * 4 // 3
_MAX_HANDLE = (1 + _KEY_ID_BYTES + _NONCE_BYTES + 16 + MAX_UPSTREAM_ID_BYTES) * 4 // 3 + 4
# `^...$` for OpenAPI (ECMA-262 regex); in code the whole string must match (`fullmatch`):
# Python's `$` also matches before a trailing newline.
HANDLE_PATTERN = rf"^[A-Za-z0-9_-]{{{_MIN_HANDLE},{_MAX_HANDLE}}}$"
_HANDLE_RE = re.compile(HANDLE_PATTERN.removeprefix("^").removesuffix("$"))


def _derive(secret: bytes) -> tuple[bytes, AESGCM]:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_AAD).derive(secret)
    key_id = hashlib.sha256(b"key-id" + key).digest()[:_KEY_ID_BYTES]
    return key_id, AESGCM(key)


def chat_key(upstream_id: str) -> str:
    """The bus name of a chat: a digest, so the bus never needs a handle to address a chat."""
    return hashlib.sha256(b"chat-bff chat " + upstream_id.encode()).hexdigest()[:32]


class HandleCodec:
    """Seals upstream chat ids into handles and opens them again.

    A handle carries 96 random nonce bits and a 128-bit authentication tag: it cannot be
    guessed or altered, shows nothing of the upstream id, and needs no stored state, so it keeps
    working when Redis loses everything. The first key seals; every key opens, so a new key can
    be put first while handles sealed under the old one stay valid until it is removed.
    """

    def __init__(self, secrets: Sequence[bytes]) -> None:
        if not secrets:
            raise ValueError("at least one secret key is required")
        self._keys = [_derive(s) for s in secrets]

    def seal(self, upstream_id: str) -> str:
        raw = upstream_id.encode()
        if not 1 <= len(raw) <= MAX_UPSTREAM_ID_BYTES:
            raise ValueError("upstream id length out of range")
        key_id, aead = self._keys[0]
        nonce = os.urandom(_NONCE_BYTES)
        header = _VERSION + key_id
        sealed = aead.encrypt(nonce, raw, _AAD + header)
        return base64.urlsafe_b64encode(header + nonce + sealed).rstrip(b"=").decode()

    def open(self, handle: str) -> str:
        """The upstream id inside `handle`; ChatNotFoundError for anything not sealed by us."""
        if not _HANDLE_RE.fullmatch(handle):
            raise ChatNotFoundError()
        try:
            blob = base64.urlsafe_b64decode(handle + "=" * (-len(handle) % 4))
        except (binascii.Error, ValueError):
            raise ChatNotFoundError() from None
        header, nonce = blob[: 1 + _KEY_ID_BYTES], blob[1 + _KEY_ID_BYTES : 1 + 4 + _NONCE_BYTES]
        if header[:1] != _VERSION:
            raise ChatNotFoundError()
        for key_id, aead in self._keys:
            if key_id != header[1:]:
                continue
            try:
                raw = aead.decrypt(nonce, blob[1 + _KEY_ID_BYTES + _NONCE_BYTES :], _AAD + header)
                return raw.decode()
            except (InvalidTag, UnicodeDecodeError):
                break
        raise ChatNotFoundError()

    def resolve(self, handle: str) -> ChatRef:
        """The chat behind `handle`; ChatNotFoundError for anything not sealed by us."""
        upstream_id = self.open(handle)
        return ChatRef(handle, upstream_id, chat_key(upstream_id))

    def issue(self, upstream_id: str) -> ChatRef:
        """A new chat's identity, under a fresh handle."""
        return ChatRef(self.seal(upstream_id), upstream_id, chat_key(upstream_id))
