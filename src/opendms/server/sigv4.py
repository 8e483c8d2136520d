"""AWS Signature Version 4 checks for the DMS JSON API.

With access keys configured (``opendms serve --access-keys FILE`` or ``OPENDMS_ACCESS_KEYS``:
``ACCESS_KEY_ID:SECRET`` lines), every request to ``POST /`` must carry an
``Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...``
header that this module recomputes from the request (canonical request, string to sign,
the derived signing key) and compares in constant time. Without keys any request is
accepted (the loopback default). Failures are DMS-shaped faults as AWS answers them:
an unknown key is ``UnrecognizedClientException``, a wrong signature
``InvalidSignatureException``."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, unquote

from opendms.errors import ConfigError
from opendms.server.shapes import DmsError

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = timedelta(minutes=15)
ENV_KEYS = "OPENDMS_ACCESS_KEYS"
_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<cred>[^,\s]+)\s*,\s*"
    r"SignedHeaders=(?P<headers>[^,\s]+)\s*,\s*Signature=(?P<sig>[0-9a-f]{64})\s*$"
)


@dataclass(frozen=True)
class SignedRequest:
    """What a signature covers: the request as the server received it."""

    method: str
    raw_path: str  # as sent, still percent-encoded
    query: str  # the raw query string
    headers: dict[str, list[str]]  # lower-case names -> values in order
    body: bytes


def load_access_keys(file: Path | None) -> dict[str, str]:
    """Access key id -> secret, from ``file`` and the ``OPENDMS_ACCESS_KEYS`` variable
    (``ID:SECRET`` lines; in the variable, lines or commas); empty: none configured."""
    text = os.environ.get(ENV_KEYS, "").replace(",", "\n")
    where = ENV_KEYS
    keys = _parse_keys(text, where)
    if file is not None:
        try:
            keys.update(_parse_keys(file.read_text(encoding="utf-8"), str(file)))
        except OSError as exc:
            message = f"cannot read the access keys file: {exc.strerror}"
            raise ConfigError(message, where=str(file)) from None
    return keys


def _parse_keys(text: str, where: str) -> dict[str, str]:
    keys: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key_id, sep, secret = line.partition(":")
        if not sep or not key_id.strip() or not secret.strip():
            raise ConfigError(f"line {number} is not ACCESS_KEY_ID:SECRET", where=where)
        keys[key_id.strip()] = secret.strip()
    return keys


def _unrecognized() -> DmsError:
    return DmsError(
        "UnrecognizedClientException", "The security token included in the request is invalid."
    )


def _mismatch(why: str) -> DmsError:
    return DmsError(
        "InvalidSignatureException",
        f"The request signature we calculated does not match the signature you provided ({why}).",
    )


def verify(request: SignedRequest, keys: dict[str, str], now: datetime | None = None) -> str:
    """The access key id of a correctly signed ``request``; a DmsError otherwise."""
    header = ", ".join(request.headers.get("authorization", []))
    if not header:
        raise DmsError(
            "MissingAuthenticationTokenException", "Request is missing Authentication Token"
        )
    match = _AUTH.match(header)
    if match is None:
        raise DmsError("IncompleteSignatureException", "The Authorization header is malformed.")
    key_id, _, scope = match["cred"].partition("/")
    secret = keys.get(key_id)
    if secret is None:
        raise _unrecognized()
    amz_date = _amz_date(request, now or datetime.now(UTC))
    signed = match["headers"].split(";")
    expected = signature(request, secret, scope, signed, amz_date)
    if not hmac.compare_digest(expected, match["sig"]):
        raise _mismatch("signature")
    return key_id


def _amz_date(request: SignedRequest, now: datetime) -> str:
    value = (request.headers.get("x-amz-date") or [""])[0]
    try:
        when = datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise DmsError(
            "IncompleteSignatureException", "X-Amz-Date is missing or malformed."
        ) from None
    if abs(now - when) > MAX_SKEW:
        raise DmsError("InvalidSignatureException", "Signature expired: the request is too old.")
    return value


def signature(
    request: SignedRequest, secret: str, scope: str, signed: list[str], amz_date: str
) -> str:
    """The hex signature of ``request`` for credential ``scope``
    (``date/region/service/aws4_request``)."""
    parts = scope.split("/")
    if len(parts) != 4 or parts[3] != "aws4_request" or not amz_date.startswith(parts[0]):
        raise _mismatch("credential scope")
    canonical = canonical_request(request, signed)
    to_sign = "\n".join(
        [ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = ("AWS4" + secret).encode()
    for part in parts:
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def canonical_request(request: SignedRequest, signed: list[str]) -> str:
    """The SigV4 canonical request: method, URI, query, signed headers, payload hash."""
    headers = []
    for name in signed:
        values = request.headers.get(name)
        if values is None:
            raise _mismatch(f"signed header {name!r} is missing")
        headers.append(f"{name}:{','.join(' '.join(v.split()) for v in values)}\n")
    payload = (request.headers.get("x-amz-content-sha256") or [""])[0]
    return "\n".join(
        [
            request.method.upper(),
            _canonical_uri(request.raw_path),
            _canonical_query(request.query),
            "".join(headers),
            ";".join(signed),
            payload or hashlib.sha256(request.body).hexdigest(),
        ]
    )


def _canonical_uri(raw_path: str) -> str:
    """The path as sent, dot segments and empty segments removed, encoded once more
    (every service but S3 signs the path double-encoded)."""
    kept: list[str] = []
    for segment in raw_path.split("/"):
        if segment == "..":
            if kept:
                kept.pop()
        elif segment and segment != ".":
            kept.append(segment)
    trailing = "/" if raw_path.endswith("/") and kept else ""
    return quote("/" + "/".join(kept) + trailing, safe="/~")


def _canonical_query(query: str) -> str:
    pairs = []
    for item in query.split("&"):
        if not item:
            continue
        key, _, value = item.partition("=")
        pairs.append((quote(unquote(key), safe="-_.~"), quote(unquote(value), safe="-_.~")))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))
