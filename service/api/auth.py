"""API keys with roles. Keys are configured as SHA-256 digests and compared in constant
time; roles nest: admin ⊃ agent ⊃ public."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

Role = Literal["public", "agent", "admin"]

RANK: dict[str, int] = {"public": 0, "agent": 1, "admin": 2}
KEY_PREFIX = "uns_"
# keys printed in the README: a configuration that uses one of them is refused
EXAMPLE_KEYS = ("uns_example_public_key", "uns_example_agent_key", "uns_example_admin_key")


class ApiKey(BaseModel):
    """One API key as configured: its SHA-256 (never the key itself), a name and a role."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    role: Role
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


EXAMPLE_KEY_HASHES = frozenset(digest(k) for k in EXAMPLE_KEYS)


def new_key() -> str:
    """A random key: 32 bytes from the OS, URL-safe."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role

    def allows(self, needed: Role) -> bool:
        return RANK[self.role] >= RANK[needed]


class Keyring:
    """Looks a presented key up among the configured digests without an early exit, so the
    time taken does not depend on which key (if any) matched."""

    def __init__(self, keys: list[ApiKey]) -> None:
        self._keys = [(bytes.fromhex(k.sha256), Principal(k.name, k.role)) for k in keys]

    def __len__(self) -> int:
        return len(self._keys)

    def identify(self, presented: str) -> Principal | None:
        candidate = hashlib.sha256(presented.encode("utf-8")).digest()
        found: Principal | None = None
        for stored, principal in self._keys:
            if hmac.compare_digest(candidate, stored):
                found = principal
        return found
