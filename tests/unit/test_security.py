"""Chat handles: unguessable, tamper-proof, opaque, rotatable; client IPs; origins."""

from __future__ import annotations

import base64

import pytest

from app.core.handles import HandleCodec
from app.edge.clients import FORWARDED_CLIENT, ClientAddress, client_key
from app.edge.cors import OriginPolicy
from app.errors import ChatNotFoundError

KEY_A = b"a" * 32
KEY_B = b"b" * 40
UPSTREAM_IDS = ["652492d9-c2d9-44c9-b9ad-0ab7984114bb", "0000Wa9CAM6W00FN", "1", "x" * 200]


@pytest.mark.parametrize("upstream_id", UPSTREAM_IDS)
def test_handle_round_trip_and_opacity(upstream_id: str) -> None:
    codec = HandleCodec([KEY_A])
    handle = codec.seal(upstream_id)
    assert codec.open(handle) == upstream_id
    if len(upstream_id) >= 8:  # a one-character id shows up in random bytes by chance
        assert upstream_id not in handle
        raw = base64.urlsafe_b64decode(handle + "=" * (-len(handle) % 4))
        assert upstream_id.encode() not in raw
    assert codec.seal(upstream_id) != handle, "sealing must be randomised"


def test_handles_differ_in_at_least_128_random_bits() -> None:
    codec = HandleCodec([KEY_A])
    handles = {codec.seal("same-chat") for _ in range(1000)}
    assert len(handles) == 1000


def test_every_single_bit_flip_is_rejected() -> None:
    codec = HandleCodec([KEY_A])
    handle = codec.seal("chat-42")
    raw = bytearray(base64.urlsafe_b64decode(handle + "=" * (-len(handle) % 4)))
    for bit in range(len(raw) * 8):
        tampered = bytearray(raw)
        tampered[bit // 8] ^= 1 << (bit % 8)
        text = base64.urlsafe_b64encode(bytes(tampered)).rstrip(b"=").decode()
        with pytest.raises(ChatNotFoundError):
            codec.open(text)


@pytest.mark.parametrize("garbage", ["", "a", "!!!!", "A" * 60, "A" * 5000, "é" * 50])
def test_garbage_handles_are_not_found(garbage: str) -> None:
    with pytest.raises(ChatNotFoundError):
        HandleCodec([KEY_A]).open(garbage)


def test_foreign_deployment_handle_is_not_found() -> None:
    handle = HandleCodec([KEY_B]).seal("chat-1")
    with pytest.raises(ChatNotFoundError):
        HandleCodec([KEY_A]).open(handle)


def test_key_rotation_keeps_old_handles_working() -> None:
    old = HandleCodec([KEY_A]).seal("chat-1")
    rotated = HandleCodec([KEY_B, KEY_A])
    assert rotated.open(old) == "chat-1"
    new = rotated.seal("chat-2")
    assert HandleCodec([KEY_B]).open(new) == "chat-2"
    with pytest.raises(ChatNotFoundError):
        HandleCodec([KEY_A]).open(new)
    with pytest.raises(ChatNotFoundError):
        HandleCodec([KEY_B]).open(old)  # once the old key is removed


@pytest.mark.parametrize(
    ("trusted", "peer", "xff", "expected"),
    [
        ([], "203.0.113.9", "1.2.3.4", "203.0.113.9"),
        (["10.0.0.0/8"], "10.1.1.1", "198.51.100.7", "198.51.100.7"),
        (["10.0.0.0/8"], "10.1.1.1", "6.6.6.6, 198.51.100.7, 10.2.2.2", "198.51.100.7"),
        (["10.0.0.0/8"], "192.0.2.1", "198.51.100.7", "192.0.2.1"),
        (["10.0.0.0/8"], "10.1.1.1", None, "10.1.1.1"),
    ],
)
def test_client_address(trusted: list[str], peer: str, xff: str | None, expected: str) -> None:
    assert ClientAddress(trusted).resolve(peer, [xff] if xff else []) == expected


@pytest.mark.parametrize(
    ("trusted", "peer", "lines", "expected"),
    [
        # HAProxy appends a line of its own: the client's forged first line must not win.
        (["10.0.0.0/8"], "10.1.1.1", ["6.6.6.6", "198.51.100.7"], "198.51.100.7"),
        (
            ["10.0.0.0/8"],
            "10.1.1.1",
            ["6.6.6.6, 7.7.7.7", "198.51.100.7, 10.2.2.2"],
            "198.51.100.7",
        ),
        (["10.0.0.0/8"], "10.1.1.1", ["198.51.100.7", "10.2.2.2", "10.3.3.3"], "198.51.100.7"),
        (["10.0.0.0/8"], "10.1.1.1", ["10.2.2.2", "10.3.3.3"], "10.2.2.2"),
        (["10.0.0.0/8"], "10.1.1.1", ["", " , "], "10.1.1.1"),
        (["10.0.0.0/8"], "10.1.1.1", ["198.51.100.7:4711"], "198.51.100.7"),
        (["10.0.0.0/8"], "10.1.1.1", ["[2001:db8::1]:443"], "2001:db8::1"),
        (["10.0.0.0/8"], "10.1.1.1", ["2001:db8::1"], "2001:db8::1"),
        # A port on a trusted hop does not make it untrusted.
        (["10.0.0.0/8"], "10.1.1.1", ["198.51.100.7, 10.2.2.2:80"], "198.51.100.7"),
        (["10.0.0.0/8"], "10.1.1.1", ["unknown"], "unknown"),
        (["10.0.0.0/8"], "203.0.113.9", ["6.6.6.6", "198.51.100.7"], "203.0.113.9"),
    ],
)
def test_client_address_reads_every_forwarded_for_line(
    trusted: list[str], peer: str, lines: list[str], expected: str
) -> None:
    assert ClientAddress(trusted).resolve(peer, lines) == expected


def test_client_address_of_a_scope_reads_all_lines() -> None:
    scope = {
        "type": "http",
        "client": ("10.1.1.1", 5000),
        "headers": [
            (b"x-forwarded-for", b"6.6.6.6"),
            (b"host", b"x"),
            (b"x-forwarded-for", b"198.51.100.7"),
        ],
    }
    assert ClientAddress(["10.0.0.0/8"]).of(scope) == "198.51.100.7"
    assert ClientAddress([]).of(scope) == "10.1.1.1"
    assert ClientAddress([]).of({"type": "http", "headers": []}) == "unknown"


@pytest.mark.parametrize(
    ("peer", "lines", "expected"),
    [
        # A server in front took the address from the header (uvicorn's default proxy
        # headers): with no trusted proxy it is not believed, whatever it says.
        ("198.51.100.7", ["198.51.100.7"], FORWARDED_CLIENT),
        ("198.51.100.7", ["6.6.6.6, 198.51.100.7:4711"], FORWARDED_CLIENT),
        ("2001:db8::7", ["[2001:DB8:0::7]:443"], FORWARDED_CLIENT),
        ("6.6.6.6", ["6.6.6.6, 127.0.0.1"], FORWARDED_CLIENT),  # the first hop, for "*"
        ("127.0.0.1", ["198.51.100.7"], "127.0.0.1"),
        ("203.0.113.9", ["1.2.3.4", "5.6.7.8"], "203.0.113.9"),
    ],
)
def test_an_address_taken_from_the_header_is_not_believed_without_trusted_proxies(
    peer: str, lines: list[str], expected: str
) -> None:
    assert ClientAddress([]).resolve(peer, lines) == expected


@pytest.mark.parametrize(
    ("address", "prefix", "key"),
    [
        ("198.51.100.7", 64, "198.51.100.7"),
        ("::ffff:198.51.100.7", 64, "198.51.100.7"),  # a dual-stack socket's IPv4 peer
        ("::FFFF:c633:6407", 48, "198.51.100.7"),
        ("2001:db8:1:2:a:b:c:d", 64, "2001:db8:1:2::/64"),
        ("2001:DB8:1:2::ffff", 64, "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", 64, "2001:db8:1:3::/64"),
        ("2001:db8:1:2:a:b:c:d", 48, "2001:db8:1::/48"),
        ("2001:db8:1:2:a:b:c:d", 56, "2001:db8:1::/56"),
        ("2001:db8:1:2:a:b:c:d", 128, "2001:db8:1:2:a:b:c:d/128"),
        ("2001:db8:1:2:a:b:c:d", 32, "2001:db8::/32"),
        ("fe80::1%eth0", 64, "fe80::/64"),
        ("::1", 64, "::/64"),
        ("unknown", 64, "unknown"),
        (FORWARDED_CLIENT, 64, FORWARDED_CLIENT),
        ("x" * 500, 64, "x" * 64),
    ],
)
def test_client_key(address: str, prefix: int, key: str) -> None:
    assert client_key(address, prefix) == key


def test_client_key_of_a_scope_is_the_prefix_of_the_resolved_address() -> None:
    def scope(peer: str, *xff: str) -> dict[str, object]:
        headers = [(b"x-forwarded-for", line.encode()) for line in xff]
        return {"type": "http", "client": (peer, 5000), "headers": headers}

    direct = ClientAddress([])
    keys = {direct.key(scope(f"2001:db8:7:7::{n:x}")) for n in range(1, 200)}
    assert keys == {"2001:db8:7:7::/64"}
    behind = ClientAddress(["10.0.0.0/8"], ipv6_prefix_len=56)
    assert behind.key(scope("10.1.1.1", "2001:db8:7:7f42::1")) == "2001:db8:7:7f00::/56"
    assert behind.key(scope("10.1.1.1", "::ffff:203.0.113.5")) == "203.0.113.5"


@pytest.mark.parametrize(
    ("allowed", "origin", "host", "ok"),
    [
        ([], None, "bff.example", True),
        ([], "https://bff.example", "bff.example", True),
        ([], "https://shop.example", "bff.example", False),
        (["https://shop.example"], "https://shop.example/", "bff.example", True),
        (["https://shop.example"], "https://evil.example", "bff.example", False),
        (["*"], "https://any.example", "bff.example", True),
    ],
)
def test_origin_policy(allowed: list[str], origin: str | None, host: str, ok: bool) -> None:
    assert OriginPolicy(allowed).allows(origin, host) is ok
