"""The pure rules of sealing (``course_audit.merkle``): RFC 6962 trees against a direct
transcription of the RFC's definitions, audit paths, canonical encodings."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from course_audit import merkle


def rfc6962_root(leaves: list[bytes]) -> bytes:
    """MTH(D[n]) as RFC 6962 section 2.1 defines it, over already hashed leaves."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return merkle.node_hash(rfc6962_root(leaves[:k]), rfc6962_root(leaves[k:]))


def leaves_of(n: int) -> list[bytes]:
    return [merkle.leaf_hash(str(i).encode()) for i in range(n)]


@given(st.integers(min_value=0, max_value=70))
def test_the_streamed_root_is_rfc_6962s(n: int) -> None:
    assert merkle.merkle_root(leaves_of(n)) == rfc6962_root(leaves_of(n)).hex()


@given(st.integers(min_value=1, max_value=70), st.data())
def test_every_audit_path_leads_to_the_root(n: int, data: st.DataObject) -> None:
    leaves = leaves_of(n)
    index = data.draw(st.integers(min_value=0, max_value=n - 1))
    path = merkle.audit_path(leaves, index)
    assert merkle.root_from_path(leaves[index], index, n, path) == merkle.merkle_root(leaves)
    other = merkle.leaf_hash(b"forged")
    assert merkle.root_from_path(other, index, n, path) != merkle.merkle_root(leaves)


def test_a_path_of_the_wrong_length_is_refused() -> None:
    leaves = leaves_of(5)
    path = merkle.audit_path(leaves, 4)
    with pytest.raises(ValueError, match="too short"):
        merkle.root_from_path(leaves[4], 4, 5, path[:-1])
    with pytest.raises(ValueError, match="too long"):
        merkle.root_from_path(leaves[4], 4, 5, [*path, path[0]])


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    assert merkle.leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert merkle.node_hash(b"a", b"b") == hashlib.sha256(b"\x01ab").digest()


def test_canonical_json_sorts_keys_and_has_no_spaces() -> None:
    assert merkle.canonical_json({"b": [1, "é"], "a": {"d": 1, "c": None}}) == (
        '{"a":{"c":null,"d":1},"b":[1,"é"]}'.encode()
    )


def test_times_are_utc_to_the_microsecond() -> None:
    moment = dt.datetime(2025, 1, 31, 13, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert merkle.utc_timestamp(moment) == "2025-01-31T12:00:00.000000Z"
    with pytest.raises(ValueError):
        merkle.utc_timestamp(moment.replace(tzinfo=None))


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)


@given(json_values, st.sampled_from([(",", ":"), (", ", ": ")]))
def test_the_canonical_json_of_a_text_is_that_of_its_value(value: Any, separators: Any) -> None:
    text = json.dumps(value, separators=separators, ensure_ascii=False)
    assert merkle.canonical_json_text(text) == merkle.canonical_json(json.loads(text)).decode()


@pytest.mark.parametrize(
    "text",
    ["{}", ' {"b": 1, "a": 2} ', '"\\u00e9\\n"', "[1.50, 1e-7, 1E300, 10000000000000000000000]"],
)
def test_the_canonical_json_of_awkward_texts(text: str) -> None:
    assert merkle.canonical_json_text(text) == merkle.canonical_json(json.loads(text)).decode()


@pytest.mark.parametrize("text", ["[NaN]", "[1E400]", '{"a": 1} x', ""])
def test_what_has_no_canonical_json_is_refused_as_before(text: str) -> None:
    with pytest.raises(ValueError):
        merkle.canonical_json(json.loads(text))
    with pytest.raises(ValueError):
        merkle.canonical_json_text(text)
