"""The pure rules of sealing: canonical encodings, RFC 6962 Merkle trees, checkpoint
headers and their Ed25519 signatures.

This module imports nothing from Django or the rest of the app (only the standard library
and ``cryptography``), so the standalone proof verifier (``python -m course_audit.proof``)
and a third party's own tools can use it as it is. ``course_audit.integrity`` builds on it.

- An event's *leaf* is the canonical JSON of its sealed fields (``leaf_bytes``); its hash is
  ``SHA-256(0x00 || leaf)``, an inner node's ``SHA-256(0x01 || left || right)`` (RFC 6962
  section 2.1, whose split at the largest power of two below ``n`` this follows).
- A checkpoint's *header* is the canonical JSON of its fields (``header_bytes``); the
  signature is Ed25519 over those bytes; the checkpoint's hash, which the next header names
  as ``previous``, is ``SHA-256(header || signature)``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

# Changes to the leaf or header encoding get a new version; a verifier refuses one it
# does not know rather than reporting every event as modified.
LEAF_VERSION = 1
HEADER_VERSION = 1
# The hash of an empty tree (RFC 6962: the hash of the empty string).
EMPTY_ROOT = hashlib.sha256(b"").hexdigest()
# The fields of a leaf, in no particular order (canonical JSON sorts them).
LEAF_FIELDS = (
    "v",
    "id",
    "uuid",
    "created_at",
    "course_id",
    "account_id",
    "event_type",
    "event_source",
    "event_data",
    "related_course_id",
    "user_id",
    "user_name_digest",
    "sis_batch_id",
    "request_id",
    "db_role",
    "db_application",
    "db_client_addr",
)
# Fields a leaf holds only when they have a value: an event without one seals as it
# always did. ``recorded_at``: when a backfilled event was really recorded.
OPTIONAL_LEAF_FIELDS = ("recorded_at",)
HEADER_FIELDS = (
    "v",
    "sequence",
    "after_id",
    "first_id",
    "last_id",
    "count",
    "root",
    "previous",
    "created_at",
    "key_id",
    "public_key",
)


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8, no NaN: one byte string for one value."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


# What ``canonical_json_text`` runs: the C scanner behind ``json.loads`` and the C encoder
# behind ``json.dumps``, with ``canonical_json``'s options, made once. ``json.dumps`` makes a
# new encoder on every call and ``json.loads`` strips whitespace with regular expressions
# first: together two thirds of the cost of an event's data when millions are sealed.
_scan_json: Any = getattr(json.JSONDecoder(), "scan_once")  # noqa: B009  (not in the stubs)
_make_c_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_encode_json: Any = (
    None
    if _make_c_encoder is None
    else _make_c_encoder(
        None,  # no circular check: a parsed value has no cycles
        json.JSONEncoder().default,
        json.encoder.encode_basestring,
        None,  # indent
        ":",
        ",",
        True,  # sort_keys
        False,  # skipkeys
        False,  # allow_nan
    )
)


def canonical_json_text(text: str) -> str:
    """``canonical_json(json.loads(text))`` as text, faster: how an event's stored JSON
    (PostgreSQL's text of a ``jsonb``, say) enters its leaf."""
    if text == "{}":
        return text
    if _encode_json is not None:
        try:
            value, end = _scan_json(text, 0)
        except StopIteration:
            end = -1
        if end == len(text):
            return "".join(_encode_json(value, 0))
    return canonical_json(json.loads(text)).decode()


def utc_timestamp(moment: dt.datetime) -> str:
    """``2025-01-31T12:00:00.000001Z``: UTC, always to the microsecond."""
    if moment.tzinfo is None:
        raise ValueError("a sealed time must be timezone-aware")
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def user_name_digest(event_uuid: str, user_name: str) -> str:
    """The sealed stand-in for a user name, salted with the event's UUID: erasing the name
    later keeps the leaf. Someone who guesses the name can confirm the guess."""
    return hashlib.sha256(f"course_audit.user_name:{event_uuid}:{user_name}".encode()).hexdigest()


def leaf_bytes(fields: Mapping[str, Any]) -> bytes:
    """An event's leaf: the canonical JSON of ``LEAF_FIELDS`` and of those of
    ``OPTIONAL_LEAF_FIELDS`` that have a value."""
    given = set(fields)
    if not set(LEAF_FIELDS) <= given <= set(LEAF_FIELDS) | set(OPTIONAL_LEAF_FIELDS) or any(
        fields[name] is None for name in given & set(OPTIONAL_LEAF_FIELDS)
    ):
        raise ValueError(
            f"a leaf has the fields {sorted(LEAF_FIELDS)} (and, set, any of"
            f" {sorted(OPTIONAL_LEAF_FIELDS)}), got {sorted(fields)}"
        )
    if fields["v"] != LEAF_VERSION:
        raise ValueError(f"unknown leaf version {fields['v']!r}")
    return canonical_json(dict(fields))


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


class RootBuilder:
    """The RFC 6962 root of leaf hashes added one at a time, in O(log n) memory: complete
    subtrees of equal size merge as they fill, and what is left folds from the right, which
    is exactly RFC 6962's split at the largest power of two."""

    def __init__(self) -> None:
        self._stack: list[tuple[int, bytes]] = []
        self.count = 0

    def add(self, hashed_leaf: bytes) -> None:
        size, node = 1, hashed_leaf
        while self._stack and self._stack[-1][0] == size:
            _, left = self._stack.pop()
            node = node_hash(left, node)
            size *= 2
        self._stack.append((size, node))
        self.count += 1

    def root(self) -> str:
        if not self._stack:
            return EMPTY_ROOT
        node = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            node = node_hash(left, node)
        return node.hex()


def merkle_root(hashed_leaves: Iterable[bytes]) -> str:
    """The RFC 6962 root of leaf hashes, a level at a time: pairing neighbours and lifting
    an odd last node unchanged to the next level builds the very tree that RFC 6962's split
    at the largest power of two does, with one hash per inner node and no per-leaf call."""
    level = list(hashed_leaves)
    if not level:
        return EMPTY_ROOT
    sha256 = hashlib.sha256
    while len(level) > 1:
        odd = level[-1] if len(level) % 2 else None
        level = [
            sha256(b"\x01" + left + right).digest()
            for left, right in zip(level[::2], level[1::2], strict=False)
        ]
        if odd is not None:
            level.append(odd)
    return level[0].hex()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (``n`` > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def _subtree_root(leaves: Sequence[bytes]) -> bytes:
    return bytes.fromhex(merkle_root(leaves))


def audit_path(hashed_leaves: Sequence[bytes], index: int) -> list[bytes]:
    """RFC 6962 section 2.1.1's audit path of leaf ``index``, from the leaf up."""
    if not 0 <= index < len(hashed_leaves):
        raise IndexError(index)
    path: list[bytes] = []
    leaves = hashed_leaves
    while len(leaves) > 1:
        k = _split(len(leaves))
        if index < k:
            path.append(_subtree_root(leaves[k:]))
            leaves = leaves[:k]
        else:
            path.append(_subtree_root(leaves[:k]))
            leaves = leaves[k:]
            index -= k
    path.reverse()
    return path


def root_from_path(hashed_leaf: bytes, index: int, size: int, path: Sequence[bytes]) -> str:
    """The root an audit path leads to (RFC 9162 section 2.1.3.2); raises ``ValueError``
    when the path's length does not fit the tree."""
    if not 0 <= index < size:
        raise ValueError("the leaf index is outside the tree")
    fn, sn = index, size - 1
    node = hashed_leaf
    for sibling in path:
        if sn == 0:
            raise ValueError("the audit path is too long")
        if fn & 1 or fn == sn:
            node = node_hash(sibling, node)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            node = node_hash(node, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("the audit path is too short")
    return node.hex()


def header_bytes(header: Mapping[str, Any]) -> bytes:
    """A checkpoint's signed bytes: the canonical JSON of exactly ``HEADER_FIELDS``."""
    if set(header) != set(HEADER_FIELDS):
        raise ValueError(f"a header has the fields {sorted(HEADER_FIELDS)}, got {sorted(header)}")
    if header["v"] != HEADER_VERSION:
        raise ValueError(f"unknown header version {header['v']!r}")
    return canonical_json(dict(header))


def checkpoint_hash(header: Mapping[str, Any], signature: bytes) -> str:
    return hashlib.sha256(header_bytes(header) + signature).hexdigest()


def public_key_raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_b64(key: Ed25519PublicKey) -> str:
    return base64.b64encode(public_key_raw(key)).decode()


def key_id(public_key: Ed25519PublicKey | bytes) -> str:
    """A key's fingerprint: the hex SHA-256 of its 32 raw bytes, cut to 16 characters."""
    raw = public_key if isinstance(public_key, bytes) else public_key_raw(public_key)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_public_key(text: str | bytes) -> Ed25519PublicKey:
    """A public key from PEM (a public or a private key's) or from base64 of its raw bytes."""
    data = text.encode() if isinstance(text, str) else text
    if b"-----BEGIN" in data:
        if b"PRIVATE KEY" in data:
            private = serialization.load_pem_private_key(data, password=None)
            if not isinstance(private, Ed25519PrivateKey):
                raise ValueError("not an Ed25519 key")
            return private.public_key()
        public = serialization.load_pem_public_key(data)
        if not isinstance(public, Ed25519PublicKey):
            raise ValueError("not an Ed25519 key")
        return public
    raw = base64.b64decode(data.strip(), validate=True)
    return Ed25519PublicKey.from_public_bytes(raw)


def signature_valid(public_key_base64: str, message: bytes, signature: bytes) -> bool:
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_base64))
        key.verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True
