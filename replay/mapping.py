"""Column mapping: from a user's historical file to fraudstream's field names and values.

A mapping says which of *your* columns holds which fraudstream field, how to compute a
field your file does not hold as such, how to read times and when labels became known. It
comes from a YAML, TOML or JSON file and/or flags (flags win): ``--map YOUR_COLUMN=field``,
``--derive field=COLUMN:RULES`` and ``--value field=VALUE``::

    columns:                 # your column: fraudstream field
      trans_date_trans_time: event_time
      cc_num: card_id
      merchant: merchant_id
      amt: amount
      is_fraud: is_fraud
    derive:                  # fields computed from a column (value map) or constant
      channel:
        from: category       # your column
        map: {"*_net": ecom} # exact values or shell patterns (* ? [..]) -> value
        default: pos         # for values no rule matches (absent: keep the value)
      mcc: {from: category, map: {grocery_pos: "5411", gas_transport: "5541"}}
      currency: {value: USD} # a constant (or simply `currency: USD`)
      transaction_id: {row_number: true}  # a file without ids: its data row numbers
    label_delay_days: 7      # labels without a label_time become known this long after
    timezone: UTC            # for timestamps without an offset
    time_unit: ms            # for numeric (epoch) timestamps: s, ms, us or ns
    sort: false              # true: sort by event time instead of refusing an unsorted file
    defaults: {country: FR}  # values for optional fields the file lacks

A column already named like a field needs no entry. Rules are tried in order, exact values
before patterns; a derived value is then checked like a column's value (a channel must be
one of pos/ecom/atm/moto, ...). Unknown fields, a field both mapped and derived, two columns
for one field, malformed rules or flags are :class:`~infra.errors.ConfigurationError`
naming the field and the column.
"""

from __future__ import annotations

import fnmatch
import json
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml

from infra.errors import ConfigurationError, InvalidInput

REQUIRED_FIELDS: tuple[str, ...] = ("transaction_id", "event_time", "card_id", "amount")
LABEL_FIELDS: tuple[str, ...] = ("is_fraud", "label_time")
# merchant_id or terminal_id is required: a file with only one uses it for both.
OPTIONAL_FIELDS: tuple[str, ...] = (
    "merchant_id", "terminal_id", "channel", "country", "device_id", "currency", "mcc",
    "label_source", "scenario",
)
FIELDS: tuple[str, ...] = REQUIRED_FIELDS + LABEL_FIELDS + OPTIONAL_FIELDS
# Fields a derivation may produce: text values (times and amounts come from columns).
DERIVABLE: tuple[str, ...] = tuple(
    f for f in FIELDS if f not in ("event_time", "label_time", "amount"))
# Values for optional fields a file lacks (valid per streams.schema: "ZZ" is the ISO 3166
# user-assigned code, used here for "unknown country").
DEFAULTS: dict[str, str] = {"channel": "pos", "country": "ZZ", "currency": "EUR",
                            "mcc": "5999"}
TimeUnit = Literal["s", "ms", "us", "ns"]
_PATTERN_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class Derivation:
    """One field computed from a user column through a value map, or a constant."""

    target: str
    source: str | None = None  # user column; None: the constant ``value``
    rules: tuple[tuple[str, str], ...] = ()  # (exact value or pattern, field value), in order
    default: str | None = None  # for values no rule matches; None: keep the value
    value: str | None = None  # the constant
    row_number: bool = False  # the data row's number in the file (1, 2, ...): an id

    def __post_init__(self) -> None:
        where = f"derivation of {self.target!r}" + (
            f" from column {self.source!r}" if self.source is not None else "")
        if self.target not in DERIVABLE:
            raise ConfigurationError(f"{where}: only {list(DERIVABLE)} can be derived")
        kinds = (self.source is not None) + (self.value is not None) + self.row_number
        if kinds != 1:
            raise ConfigurationError(
                f"{where}: give exactly one of 'from' (a column), 'value' or 'row_number'")
        if self.source is None and (self.rules or self.default is not None):
            raise ConfigurationError(f"{where}: 'map' and 'default' need 'from' (a column)")

    def label(self) -> str:
        """How error messages name it: the user column, the constant or the row number."""
        if self.source is not None:
            return f"column {self.source!r}"
        return "the row number" if self.row_number else f"constant {self.value!r}"

    def lookup(self, values: Sequence[str]) -> dict[str, str]:
        """{source value: field value} for the distinct ``values``: the first exact rule,
        else the first matching pattern, else the default (else the value itself)."""
        exact = {k: v for k, v in self.rules if not _PATTERN_CHARS & set(k)}
        patterns = [(k, v) for k, v in self.rules if _PATTERN_CHARS & set(k)]

        def one(value: str) -> str:
            if value in exact:
                return exact[value]
            match = next((v for k, v in patterns if fnmatch.fnmatchcase(value, k)), None)
            if match is not None:
                return match
            return value if self.default is None else self.default

        return {value: one(value) for value in values}

    def apply(self, raw: pd.DataFrame) -> pd.Series:
        """The derived column for ``raw`` (blanks stay blank unless a default is given)."""
        if self.source is None:
            if self.row_number:
                return pd.Series(range(1, len(raw) + 1), index=raw.index).astype("string")
            return pd.Series(self.value, index=raw.index, dtype="string")
        if self.source not in raw.columns:
            raise InvalidInput(f"column {self.source!r} (to derive {self.target}) is not in "
                               f"the file (file columns: {[str(c) for c in raw.columns]})")
        text = as_text(raw[self.source])
        table = self.lookup(pd.unique(text.dropna().to_numpy(dtype=object)).tolist())
        out = text.map(table).astype("string")
        return out if self.default is None else out.fillna(self.default)


def by_value(values: pd.Series, fn: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """``fn`` (text in, text out) applied once per distinct value, spread back to every row
    as a "string" Series (missing values stay <NA>). Categories, codes and flags repeat:
    a million rows of 14 categories cost 14 string operations, not a million."""
    codes, uniques = pd.factorize(values)
    done = fn(pd.Series(uniques)).astype("string").array
    return pd.Series(done.take(codes, allow_fill=True), index=values.index, dtype="string")


def as_text(raw: pd.Series) -> pd.Series:
    """Strings, blanks as <NA>; integral floats lose their '.0' (codes read as numbers)."""
    if pd.api.types.is_float_dtype(raw):
        whole = raw.dropna()
        if (whole == whole.round()).all():
            raw = raw.astype("Int64")
    return by_value(raw, _stripped)


def _stripped(values: pd.Series) -> pd.Series:
    text = values.astype("string").str.strip()
    return text.mask(text == "")


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
    derive: Mapping[str, Derivation] = field(default_factory=dict)  # field -> derivation

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
            if name in self.derive:
                raise ConfigurationError(f"field {name!r} is both mapped (column {column!r}) "
                                         f"and derived (from {self.derive[name].label()})")
            seen[name] = column
        wrong = sorted(n for n, d in self.derive.items() if d.target != n)
        if wrong:
            raise ConfigurationError(f"derive: entries {wrong} name another target field")
        bad = sorted(set(self.defaults) - set(DEFAULTS))
        if bad:
            raise ConfigurationError(f"defaults only apply to {sorted(DEFAULTS)}, not {bad}")
        if self.label_delay_days < 0:
            raise ConfigurationError("label_delay_days must be >= 0")
        if self.time_unit not in ("s", "ms", "us", "ns"):
            raise ConfigurationError(f"time_unit must be s, ms, us or ns, not {self.time_unit!r}")

    def source_of(self, name: str, available: Sequence[str]) -> str | None:
        """The user column that holds field ``name`` (mapped, else same-named), or None.

        A derived field has no source column: :func:`with_derived` adds its values.
        """
        if name in self.derive:
            return None
        for column, target in self.columns.items():
            if target == name:
                return column
        mapped_away = name in self.columns  # a column named like a field but mapped elsewhere
        return name if name in available and not mapped_away else None

    def default(self, name: str) -> str:
        return str(self.defaults.get(name, DEFAULTS[name]))


def derived_column(name: str) -> str:
    """The column :func:`with_derived` stores field ``name``'s derived values under."""
    return f"<derived {name}>"


def with_derived(raw: pd.DataFrame, mapping: ColumnMapping) -> tuple[pd.DataFrame, dict[str, str]]:
    """``raw`` plus one column per derivation; and {field: that column} for the reader.

    The user's own columns are left as they are, so one column can feed several fields
    (a category mapped to ``channel`` and to ``mcc``) and still be mapped itself.
    """
    if not mapping.derive:
        return raw, {}
    added = {derived_column(n): d.apply(raw) for n, d in mapping.derive.items()}
    return raw.assign(**added), {n: derived_column(n) for n in mapping.derive}


def parse_pairs(pairs: Sequence[str], flag: str = "--map",
                form: str = "YOUR_COLUMN=field") -> dict[str, str]:
    """``["TX_ID=transaction_id", ...]`` -> ``{"TX_ID": "transaction_id"}``."""
    out: dict[str, str] = {}
    for pair in pairs:
        column, sep, name = pair.partition("=")
        if not sep or not column.strip() or not name.strip():
            raise ConfigurationError(f"{flag} expects {form}, got {pair!r}")
        out[column.strip()] = name.strip()
    return out


def parse_derive_flag(text: str) -> Derivation:
    """``channel=category:*_net=ecom,*=pos`` (rules in order; ``*`` matches the rest)."""
    form = "field=COLUMN:VALUE=out,... (e.g. channel=category:*_net=ecom,*=pos)"
    target, sep, rest = text.partition("=")
    source, colon, rules = rest.partition(":")
    if not sep or not colon or not target.strip() or not source.strip():
        raise ConfigurationError(f"--derive expects {form}, got {text!r}")
    pairs = [r for r in rules.split(",") if r.strip()]
    parsed = parse_pairs(pairs, "--derive", form)
    return Derivation(target.strip(), source.strip(), tuple(parsed.items()))


def _known_keys(given: Iterable[str], allowed: Sequence[str], where: str) -> None:
    """A ``ConfigurationError`` naming the keys of ``given`` that are not ``allowed``."""
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise ConfigurationError(f"{where}: unknown key(s) {unknown}; allowed: "
                                 f"{', '.join(allowed)}")


def parse_derivation(name: str, spec: object) -> Derivation:
    """One entry of a mapping file's ``derive`` table (see the module docstring)."""
    where = f"derive.{name}"
    if not isinstance(spec, dict):  # `currency: USD` is a constant
        if spec is None or isinstance(spec, list):
            raise ConfigurationError(f"{where}: give a value or {{from: COLUMN, map: ...}}")
        return Derivation(name, value=_scalar(spec, where))
    _known_keys(spec, ("from", "map", "default", "value", "row_number"), where)
    table = spec.get("map") or {}
    if not isinstance(table, dict):
        raise ConfigurationError(f"{where}.map must map your value -> field value")
    default, value = spec.get("default"), spec.get("value")
    return Derivation(name, None if spec.get("from") is None else _scalar(spec["from"], where),
                      tuple((_scalar(k, where), _scalar(v, where)) for k, v in table.items()),
                      None if default is None else _scalar(default, where),
                      None if value is None else _scalar(value, where),
                      spec.get("row_number") is True)


def _scalar(value: object, where: str) -> str:
    """A YAML/JSON scalar as the text a file holds (True -> 'true', 1.0 -> '1')."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list) or value is None:
        raise ConfigurationError(f"{where}: expected a single value, got {value!r}")
    return str(value)


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
         "defaults", "derive")


def _file_derivations(data: dict[str, Any], path: object) -> dict[str, Derivation]:
    table = data.get("derive") or {}
    if not isinstance(table, dict):
        raise ConfigurationError(f"mapping file {path}: 'derive' must map field -> rule")
    return {str(k): parse_derivation(str(k), v) for k, v in table.items()}


def _flag_derivations(derive: Sequence[str], values: Sequence[str]) -> dict[str, Derivation]:
    out = {d.target: d for d in map(parse_derive_flag, derive)}
    constants = parse_pairs(values, "--value", "field=VALUE")
    return out | {k: Derivation(k, value=v) for k, v in constants.items()}


def load_mapping(path: str | Path | None = None, pairs: Sequence[str] = (),
                 label_delay_days: float | None = None, *, derive: Sequence[str] = (),
                 values: Sequence[str] = ()) -> ColumnMapping:
    """A mapping from an optional file, overridden by ``--map``/``--derive``/``--value``
    flags and a delay flag. A flag for a field replaces the file's entry for it."""
    data: dict[str, Any] = _read_file(Path(path)) if path else {}
    _known_keys(data, _KEYS, f"mapping file {path}")
    columns = data.get("columns") or {}
    if not isinstance(columns, dict):
        raise ConfigurationError(f"mapping file {path}: 'columns' must map column -> field")
    flag_columns, flag_derive = parse_pairs(pairs), _flag_derivations(derive, values)
    data["columns"] = {str(k): str(v) for k, v in columns.items()
                       if str(v) not in flag_derive} | flag_columns  # flags win
    data["derive"] = {k: d for k, d in _file_derivations(data, path).items()
                      if k not in flag_columns.values()} | flag_derive
    data["defaults"] = {str(k): str(v) for k, v in (data.get("defaults") or {}).items()}
    mapping = ColumnMapping(**data)
    if label_delay_days is not None:
        mapping = replace(mapping, label_delay_days=label_delay_days)
    return mapping
