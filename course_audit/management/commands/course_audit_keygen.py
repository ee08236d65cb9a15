"""Make an Ed25519 key pair for signing checkpoints::

    python manage.py course_audit_keygen /etc/course_audit/signing.pem

writes the private key (mode 0600) to the path and the public key beside it
(``signing.pub.pem``), and prints the key id. Point ``COURSE_AUDIT_SIGNING_KEY`` at the
private key; give the public key to whoever verifies proofs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from course_audit import integrity


class Command(BaseCommand):
    help = "Write a new Ed25519 key pair for signing checkpoints."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="where to write the private key (PEM)")
        parser.add_argument("--force", action="store_true", help="replace existing files")

    def handle(self, *args: Any, **options: Any) -> None:
        private_path = Path(options["path"])
        public_path = private_path.with_name(f"{private_path.stem}.pub.pem")
        for path in (private_path, public_path):
            if path.exists() and not options["force"]:
                raise CommandError(f"{path} exists; --force replaces it")
        private_pem, public_pem, key_id = integrity.generate_key_pair()
        descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(private_pem)
        public_path.write_bytes(public_pem)
        self.stdout.write(
            f"key {key_id}: private key {private_path} (keep it secret), public key {public_path}"
        )
