"""Signatures of thinking blocks: an HMAC-SHA256 of the thinking text under a server key.

Anthropic signs the thinking it returns so that a block sent back in a later turn can be trusted. Here the
signature lets the server recognise its own model's thinking: a block whose signature checks out is rendered
into the prompt the way the family's template wants past thinking; one that does not (forged, edited, from
another server, or from before a restart when the key is per process) is dropped, never shown to the model.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

VERSION = b"t1"  # in the MAC and the signature, so a later scheme can tell its own apart


class ThinkingSigner:
    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def from_setting(cls, key: str | None) -> ThinkingSigner:
        """--thinking-signature-key, or a random key for this process."""
        return cls(key.encode() if key else secrets.token_bytes(32))

    def sign(self, thinking: str) -> str:
        mac = hmac.new(self._key, VERSION + b"\0" + thinking.encode(), hashlib.sha256).digest()
        return VERSION.decode() + "." + base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def verify(self, thinking: str, signature: str) -> bool:
        return hmac.compare_digest(self.sign(thinking).encode(), signature.encode())
