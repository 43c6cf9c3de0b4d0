"""Secrets at rest: CRM credentials and tokens are stored as Fernet tokens.

The key comes from ``QG_SECRET_KEY``: one or more comma-separated Fernet keys, the first used
to encrypt and every one tried to decrypt (so a key can be rotated: put the new key first,
re-encrypt with ``quotagap rotate-secrets``, then drop the old one). Without it, a key is
generated once into ``QG_SECRET_KEY_FILE`` (default ``data/secret.key``, mode 0600), which
suits the single-machine default; set ``QG_SECRET_KEY`` for anything shared.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from app.core.config import Settings
from app.core.exceptions import QuotaGapError


class SecretError(QuotaGapError):
    code = "secret_unreadable"


def _keys(settings: Settings) -> list[bytes]:
    if settings.secret_key is not None:
        return [
            k.strip().encode()
            for k in settings.secret_key.get_secret_value().split(",")
            if k.strip()
        ]
    path = Path(settings.secret_key_file)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(Fernet.generate_key())
    return [path.read_bytes().strip()]


def _fernet(settings: Settings) -> MultiFernet:
    try:
        return MultiFernet([Fernet(k) for k in _keys(settings)])
    except ValueError as exc:
        raise SecretError("QG_SECRET_KEY is not a valid Fernet key") from exc


def encrypt(settings: Settings, data: dict[str, Any]) -> str:
    return _fernet(settings).encrypt(json.dumps(data).encode()).decode()


def decrypt(settings: Settings, token: str | None) -> dict[str, Any]:
    if not token:
        return {}
    try:
        value = json.loads(_fernet(settings).decrypt(token.encode()))
    except InvalidToken as exc:
        raise SecretError("stored credentials cannot be decrypted with QG_SECRET_KEY") from exc
    return value if isinstance(value, dict) else {}


def rotate(settings: Settings, token: str) -> str:
    """Re-encrypt under the first (newest) key."""
    return _fernet(settings).rotate(token.encode()).decode()


def derived_key(settings: Settings, purpose: str) -> bytes:
    """A key for ``purpose`` (e.g. signing ETags) derived from the newest secret key: stable
    across processes and restarts, useless for decrypting anything."""
    import hashlib

    return hashlib.blake2b(
        _keys(settings)[0], digest_size=32, person=purpose.encode()[:16]
    ).digest()
