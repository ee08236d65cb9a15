"""Check an event's proof without Django, the database or the app::

    python -m course_audit.proof proof.json public.pem

``proof.json`` is what ``GET /api/v1/audit/course/events/<uuid>/proof`` answers;
``public.pem`` the public key the checkpoint must be signed with (PEM, or the base64 of its
raw 32 bytes). Exits 0 when the event, exactly as given, is in the checkpoint and the
checkpoint is signed by that key; 1 otherwise, saying why. It needs only the standard
library and ``cryptography`` (through ``course_audit.merkle``).
"""

from __future__ import annotations

import base64
import binascii
import json
import sys
from pathlib import Path
from typing import Any

from course_audit import merkle

PROOF_FORMAT = "course_audit.proof.v1"


class ProofError(Exception):
    pass


def check(proof: dict[str, Any], public_key: str | bytes) -> str:
    """Check ``proof`` against ``public_key``; returns what it proves, or raises
    ``ProofError`` saying what fails."""
    try:
        if proof.get("format") != PROOF_FORMAT:
            raise ProofError(f"not a {PROOF_FORMAT} proof")
        event = proof["event"]
        checkpoint = proof["checkpoint"]
        header = checkpoint["header"]
        signature = base64.b64decode(checkpoint["signature"], validate=True)
        expected = merkle.public_key_b64(merkle.load_public_key(public_key))
        if header["public_key"] != expected:
            raise ProofError(
                f"the checkpoint is signed by key {header['key_id']}, not the one given"
            )
        signed = merkle.header_bytes(header)
        if not merkle.signature_valid(expected, signed, signature):
            raise ProofError("the checkpoint's signature does not verify")
        if merkle.checkpoint_hash(header, signature) != checkpoint["hash"]:
            raise ProofError("the checkpoint's hash does not match its header and signature")
        if proof["tree_size"] != header["count"]:
            raise ProofError("the proof's tree size is not the checkpoint's event count")
        if not header["after_id"] < event["id"] <= header["last_id"]:
            raise ProofError("the event's id is outside the checkpoint's range")
        path = [bytes.fromhex(node) for node in proof["audit_path"]]
        hashed = merkle.leaf_hash(merkle.leaf_bytes(event))
        root = merkle.root_from_path(hashed, proof["leaf_index"], proof["tree_size"], path)
    except (KeyError, TypeError, ValueError, binascii.Error) as error:
        raise ProofError(f"malformed proof or key: {error}") from error
    if root != header["root"]:
        raise ProofError(
            f"event {event['uuid']} is not what checkpoint #{header['sequence']} sealed"
            " (the audit path leads to another root)"
        )
    return (
        f"event {event['uuid']} (id {event['id']}) is sealed in checkpoint"
        f" #{header['sequence']} (root {header['root']}), signed by key {header['key_id']}"
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m course_audit.proof proof.json public.pem", file=sys.stderr)
        return 2
    try:
        proof = json.loads(Path(args[0]).read_text())
        key = Path(args[1]).read_bytes()
        print(f"OK: {check(proof, key)}")
    except (OSError, ValueError) as error:
        print(f"FAILED: cannot read the proof or key: {error}")
        return 1
    except ProofError as error:
        print(f"FAILED: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
