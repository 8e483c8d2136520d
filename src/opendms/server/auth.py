"""The server's secrets in its state folder, each created on first start, mode 0600:

- ``token``: the bearer token that protects the REST API and the console
  (``Authorization: Bearer <token>``, or the console's signed session cookie);
- ``secret.key``: the key that encrypts endpoint passwords at rest and signs the
  console's cookies and CSRF tokens.

The token is shown once, by ``opendms serve`` on first start; ``opendms serve --show-token``
prints it again. Comparisons are constant-time."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from itsdangerous import BadSignature, URLSafeTimedSerializer

TOKEN_FILE = "token"
KEY_FILE = "secret.key"


def _private_file(path: Path, make: bytes) -> tuple[bytes, bool]:
    """The contents of ``path``, written as ``make`` with mode 0600 when missing;
    (contents, created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip(), False
    with os.fdopen(fd, "wb") as out:
        out.write(make + b"\n")
    return make, True


def load_or_create_token(state: Path) -> tuple[str, bool]:
    """The server's bearer token, and whether this call created it."""
    token, created = _private_file(state / TOKEN_FILE, secrets.token_urlsafe(32).encode())
    return token.decode(), created


def load_or_create_key(state: Path) -> bytes:
    """The server's 32-byte secret key, url-safe base64 (a Fernet key)."""
    key, _ = _private_file(state / KEY_FILE, base64.urlsafe_b64encode(os.urandom(32)))
    return key


def token_matches(given: str | None, token: str) -> bool:
    """Constant-time comparison of a presented token with the server's."""
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


SESSION_COOKIE = "opendms_session"
SESSION_MAX_AGE = 12 * 3600  # seconds a console login lasts


def _signer(key: bytes, salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(key, salt=salt)


def make_session(key: bytes) -> str:
    """A signed console session cookie value (its CSRF token is derived from it)."""
    return _signer(key, "session").dumps({"sid": secrets.token_urlsafe(16)})


def session_valid(value: str | None, key: bytes, max_age: int = SESSION_MAX_AGE) -> bool:
    """Whether ``value`` is a console session cookie this server signed, still fresh."""
    if not value:
        return False
    try:
        _signer(key, "session").loads(value, max_age=max_age)
    except BadSignature:
        return False
    return True


def csrf_token(session: str, key: bytes) -> str:
    """The CSRF token of a console session: an HMAC of the session cookie value."""
    return hmac.new(key, b"csrf:" + session.encode(), hashlib.sha256).hexdigest()


def csrf_valid(given: str | None, session: str | None, key: bytes) -> bool:
    return bool(given and session) and hmac.compare_digest(
        str(given), csrf_token(str(session), key)
    )
