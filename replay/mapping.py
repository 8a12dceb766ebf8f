"""Column mapping: from a user's historical file to fraudstream's field names.

A mapping says which of *your* columns holds which fraudstream field, plus how to read
times and when labels became known. It comes from a YAML, TOML or JSON file and/or
``--map YOUR_COLUMN=field`` flags (flags win)::

    columns:                 # your column: fraudstream field
      TX_ID: transaction_id
      TX_DATETIME: event_time
      CUSTOMER_ID: card_id
      TERMINAL_ID: terminal_id
      TX_AMOUNT: amount
      TX_FRAUD: is_fraud
    label_delay_days: 7      # labels without a label_time become known this long after
    timezone: UTC            # for timestamps without an offset
    time_unit: ms            # for numeric (epoch) timestamps: s, ms, us or ns
    sort: false              # true: sort by event time instead of refusing an unsorted file
    defaults: {country: FR}  # values for optional fields the file lacks

A column already named like a field needs no entry. Unknown fields, two columns for one
field and malformed flags are :class:`~infra.errors.ConfigurationError`.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from infra.errors import ConfigurationError

REQUIRED_FIELDS: tuple[str, ...] = ("transaction_id", "event_time", "card_id", "amount")
LABEL_FIELDS: tuple[str, ...] = ("is_fraud", "label_time")
# merchant_id or terminal_id is required: a file with only one uses it for both.
OPTIONAL_FIELDS: tuple[str, ...] = (
    "merchant_id", "terminal_id", "channel", "country", "device_id", "currency", "mcc",
    "label_source", "scenario",
)
FIELDS: tuple[str, ...] = REQUIRED_FIELDS + LABEL_FIELDS + OPTIONAL_FIELDS
# Values for optional fields a file lacks (valid per streams.schema: "ZZ" is the ISO 3166
# user-assigned code, used here for "unknown country").
DEFAULTS: dict[str, str] = {"channel": "pos", "country": "ZZ", "currency": "EUR",
                            "mcc": "5999"}
TimeUnit = Literal["s", "ms", "us", "ns"]


@dataclass(frozen=True)
class ColumnMapping:
    """How to read one user file; see the module docstring for the file form."""

    columns: Mapping[str, str] = field(default_factory=dict)  # user column -> field
    label_delay_days: float = 7.0
    timezone: str = "UTC"
    time_unit: TimeUnit = "ms"
    time_format: str | None = None  # strftime format; None: ISO-8601
    sort: bool = False
    defaults: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted({f for f in self.columns.values() if f not in FIELDS})
        if unknown:
            raise ConfigurationError(
                f"column mapping names unknown field(s) {unknown}; fields are {list(FIELDS)}")
        seen: dict[str, str] = {}
        for column, name in self.columns.items():
            if name in seen:
                raise ConfigurationError(
                    f"columns {seen[name]!r} and {column!r} are both mapped to {name!r}")
            seen[name] = column
        bad = sorted(set(self.defaults) - set(DEFAULTS))
        if bad:
            raise ConfigurationError(f"defaults only apply to {sorted(DEFAULTS)}, not {bad}")
        if self.label_delay_days < 0:
            raise ConfigurationError("label_delay_days must be >= 0")
        if self.time_unit not in ("s", "ms", "us", "ns"):
            raise ConfigurationError(f"time_unit must be s, ms, us or ns, not {self.time_unit!r}")

    def source_of(self, name: str, available: Sequence[str]) -> str | None:
        """The user column that holds field ``name`` (mapped, else same-named), or None."""
        for column, target in self.columns.items():
            if target == name:
                return column
        mapped_away = name in self.columns  # a column named like a field but mapped elsewhere
        return name if name in available and not mapped_away else None

    def default(self, name: str) -> str:
        return str(self.defaults.get(name, DEFAULTS[name]))


def parse_pairs(pairs: Sequence[str]) -> dict[str, str]:
    """``["TX_ID=transaction_id", ...]`` -> ``{"TX_ID": "transaction_id"}``."""
    out: dict[str, str] = {}
    for pair in pairs:
        column, sep, name = pair.partition("=")
        if not sep or not column.strip() or not name.strip():
            raise ConfigurationError(f"--map expects YOUR_COLUMN=field, got {pair!r}")
        out[column.strip()] = name.strip()
    return out


def _read_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigurationError(f"mapping file {path} does not exist")
    text = path.read_text()
    try:
        if path.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        elif path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            raise ConfigurationError(f"mapping file {path}: use .yaml, .yml, .toml or .json")
    except (yaml.YAMLError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigurationError(f"mapping file {path} is not valid: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"mapping file {path} must hold a table/object at the top")
    return data


_KEYS = ("columns", "label_delay_days", "timezone", "time_unit", "time_format", "sort",
         "defaults")


def load_mapping(path: str | Path | None = None, pairs: Sequence[str] = (),
                 label_delay_days: float | None = None) -> ColumnMapping:
    """A mapping from an optional file, overridden by ``--map`` pairs and a delay flag."""
    data: dict[str, Any] = _read_file(Path(path)) if path else {}
    unknown = sorted(set(data) - set(_KEYS))
    if unknown:
        raise ConfigurationError(f"mapping file {path}: unknown key(s) {unknown}; "
                                 f"allowed: {list(_KEYS)}")
    columns = data.get("columns") or {}
    if not isinstance(columns, dict):
        raise ConfigurationError(f"mapping file {path}: 'columns' must map column -> field")
    data["columns"] = {str(k): str(v) for k, v in columns.items()} | parse_pairs(pairs)
    data["defaults"] = {str(k): str(v) for k, v in (data.get("defaults") or {}).items()}
    mapping = ColumnMapping(**data)
    if label_delay_days is not None:
        mapping = replace(mapping, label_delay_days=label_delay_days)
    return mapping
