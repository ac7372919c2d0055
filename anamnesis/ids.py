"""Note ids: ULIDs (time-ordered, never reused) and the rule for ids that may touch a path."""

from __future__ import annotations

import os
import re
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_ULID_RE = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")
# Ids written by other tools (0.1.3 imports, conflict copies) are not always ULIDs; any id that
# is safe as a file name is accepted when reading. Nothing else may reach the file system.
_SAFE_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")


def new_ulid(now_ms: int | None = None) -> str:
    """A fresh ULID: 48 bits of milliseconds, then 80 random bits, in Crockford base32."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    return encode_ulid(ms, int.from_bytes(os.urandom(10), "big"))


def encode_ulid(ms: int, entropy: int) -> str:
    """The ULID of `ms` (milliseconds since the epoch, 48 bits) and `entropy` (80 bits)."""
    if not 0 <= ms < 1 << 48 or not 0 <= entropy < 1 << 80:
        raise ValueError(f"a ULID holds 48 bits of time and 80 of entropy (got {ms}, {entropy})")
    value = (ms << 80) | entropy
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def is_ulid(text: str) -> bool:
    return _ULID_RE.fullmatch(text) is not None


def is_safe_id(text: str) -> bool:
    """True when `text` can name a note file without escaping its directory."""
    return _SAFE_ID_RE.fullmatch(text) is not None


def normalize_id(text: str) -> str:
    """Accept a ULID typed in lower case; leave other ids as they are."""
    stripped = text.strip()
    upper = stripped.upper()
    return upper if is_ulid(upper) else stripped
