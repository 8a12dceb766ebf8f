"""Named API keys: who is calling, for the audit trail and the console.

Keys come from settings only: ``FRAUDSTREAM_API_KEYS`` (``name:key,name:key``),
``FRAUDSTREAM_API_KEYS_FILE`` (one ``name:key`` a line, ``#`` comments) and the single
``FRAUDSTREAM_API_KEY`` (named ``api``). The *name* of the key a request presents is its
actor: alias moves are audited under it and analysts' verdicts carry it. A caller never
chooses its own name.

Contract:

- a key is looked up by its SHA-256 digest, so the comparison does not depend on how many
  leading characters of a guess were right (the dict lookup sees digests, not keys);
- an empty key, a key shorter than :data:`MIN_KEY_CHARS` or with fewer than
  :data:`MIN_DISTINCT_CHARS` distinct characters is *weak*: :func:`load_keys` raises
  :class:`~infra.errors.ConfigurationError` naming it (the API refuses to start), unless
  ``FRAUDSTREAM_API_ALLOW_WEAK_KEYS=true`` (tests, local dev);
- names and keys are unique; a name is 1-64 of ``[A-Za-z0-9_.@-]``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from infra.errors import ConfigurationError
from infra.settings import Settings

MIN_KEY_CHARS = 16
MIN_DISTINCT_CHARS = 6
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
LEGACY_NAME = "api"


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def weakness(key: str) -> str | None:
    """Why ``key`` is too weak to guard write endpoints, or None."""
    if not key.strip():
        return "empty"
    if len(key) < MIN_KEY_CHARS:
        return f"{len(key)} characters (at least {MIN_KEY_CHARS} needed)"
    if len(set(key)) < MIN_DISTINCT_CHARS:
        return f"only {len(set(key))} distinct characters (at least {MIN_DISTINCT_CHARS})"
    return None


@dataclass(frozen=True)
class KeyStore:
    """Digest of each key -> its name. Empty store = write endpoints are disabled."""

    by_digest: dict[bytes, str] = field(default_factory=dict)

    def name_for(self, key: str | None) -> str | None:
        """The key's name, or None for a missing or unknown key."""
        if not key:
            return None
        return self.by_digest.get(_digest(key))

    @property
    def names(self) -> list[str]:
        return sorted(self.by_digest.values())

    def __bool__(self) -> bool:
        return bool(self.by_digest)


def parse_pairs(text: str, where: str) -> list[tuple[str, str]]:
    """``name:key`` items separated by commas or new lines; ``#`` starts a comment line."""
    pairs = []
    for n, raw in enumerate(re.split(r"[,\n]", text), start=1):
        item = raw.strip()
        if not item or item.startswith("#"):
            continue
        name, sep, key = item.partition(":")
        if not sep:
            raise ConfigurationError(f"{where}: item {n} is not 'name:key'")
        pairs.append((name.strip(), key.strip()))
    return pairs


def load_keys(settings: Settings) -> KeyStore:
    """The key store from settings; raises ConfigurationError on a bad or weak key."""
    pairs: list[tuple[str, str, str]] = []
    if settings.api_key is not None:
        pairs.append((LEGACY_NAME, settings.api_key.get_secret_value(), "FRAUDSTREAM_API_KEY"))
    if settings.api_keys is not None:
        where = "FRAUDSTREAM_API_KEYS"
        pairs += [(n, k, where) for n, k in parse_pairs(settings.api_keys.get_secret_value(),
                                                        where)]
    if settings.api_keys_file is not None:
        where = f"FRAUDSTREAM_API_KEYS_FILE={settings.api_keys_file}"
        try:
            text = settings.api_keys_file.read_text()
        except OSError as exc:
            raise ConfigurationError(f"{where}: cannot read: {exc}") from exc
        pairs += [(n, k, where) for n, k in parse_pairs(text, where)]
    store: dict[bytes, str] = {}
    for name, key, where in pairs:
        if not _NAME.match(name):
            raise ConfigurationError(f"{where}: key name {name!r} must be 1-64 of "
                                     "letters, digits, '_', '.', '@', '-'")
        if name in store.values():
            raise ConfigurationError(f"{where}: key name {name!r} is given twice")
        weak = weakness(key)
        if weak is not None and (weak == "empty" or not settings.api_allow_weak_keys):
            raise ConfigurationError(
                f"{where}: the key of {name!r} is weak ({weak}); the API will not run write "
                "endpoints behind it. Use e.g. `python -c 'import secrets; "
                "print(secrets.token_urlsafe(24))'` (FRAUDSTREAM_API_ALLOW_WEAK_KEYS=true "
                "accepts it, for tests and local dev only)")
        digest = _digest(key)
        if digest in store:
            raise ConfigurationError(f"{where}: {name!r} and {store[digest]!r} share a key")
        store[digest] = name
    return KeyStore(store)
