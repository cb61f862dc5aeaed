"""The points ledger's page cursors (`before` / `nextCursor`): opaque, URL-safe, signed.

A cursor names a position in one customer's ledger (API.md: "a position in the customer's history, not an
index") and the program filter it was made for: (orgId, customerId, sequence number, programId or 0), with
an HMAC-SHA256 of them, truncated to 16 bytes. Its key is the same in every API process and replica:
POINTSVIEW_LEDGER_CURSOR_SECRET, else derived from the JWT secret or key file, else from the key prefix.
"""

import base64
import hashlib
import hmac
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from runtime.settings import Settings

_FIELDS = struct.Struct(">BQQQI")  # version, orgId, customerId, sequence number, programId (0: every program)
_VERSION = 1
_MAC_BYTES = 16
_LENGTH = (_FIELDS.size + _MAC_BYTES) * 4 // 3  # base64 without padding: 45 bytes are 60 characters
_SHAPE = re.compile(rf"[A-Za-z0-9_-]{{{_LENGTH}}}")


@dataclass(frozen=True, slots=True)
class Cursor:
    org_id: int
    customer_id: int
    seq: int  # the page holds entries older than this one
    program_id: int  # 0: every program


class Cursors:
    def __init__(self, key: bytes):
        self._key = key

    def encode(self, cursor: Cursor) -> str:
        fields = _FIELDS.pack(_VERSION, cursor.org_id, cursor.customer_id, cursor.seq, cursor.program_id)
        return base64.urlsafe_b64encode(fields + self._mac(fields)).decode()

    def decode(self, text: str) -> Cursor | None:
        """The cursor `text` encodes, or None when it is not one this service signed (tampered, truncated,
        made with another key, or anything else)."""
        if not _SHAPE.fullmatch(text):
            return None
        raw = base64.urlsafe_b64decode(text)
        fields, mac = raw[: _FIELDS.size], raw[_FIELDS.size :]
        if not hmac.compare_digest(mac, self._mac(fields)):
            return None
        version, org_id, customer_id, seq, program_id = _FIELDS.unpack(fields)
        return Cursor(org_id, customer_id, seq, program_id) if version == _VERSION else None

    def _mac(self, fields: bytes) -> bytes:
        return hmac.new(self._key, fields, hashlib.sha256).digest()[:_MAC_BYTES]


def cursor_key(settings: Settings) -> bytes:
    """The cursors' signing key: the same wherever the settings are (every worker, every replica)."""
    if settings.ledger_cursor_secret is not None:
        secret = settings.ledger_cursor_secret.get_secret_value().encode()
    elif settings.jwt_secret is not None:
        secret = settings.jwt_secret.get_secret_value().encode()
    elif settings.jwt_private_key_file:
        secret = Path(settings.jwt_private_key_file).read_bytes()
    else:  # no secret configured: cursors are still checked against tampering, but could be forged
        secret = settings.key_prefix.encode()
    return hmac.new(b"pointsview ledger cursor", secret, hashlib.sha256).digest()
