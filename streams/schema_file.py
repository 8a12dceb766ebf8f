"""The committed JSON Schema file for upstream teams, generated from the ``Transaction`` model.

``streams/transaction.schema.json`` is what upstream services validate against (it ships in
the package). It is generated, never edited by hand: regenerate it with
``python -m streams.schema_file`` after changing :mod:`streams.schema`, and
``python -m streams.schema_file --check`` (also a unit test) fails when it has drifted.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from streams.schema import transaction_json_schema

SCHEMA_PATH = Path(__file__).with_name("transaction.schema.json")
_HEAD = ("$schema", "$id", "title", "description", "type")


def render_schema(schema: dict[str, Any] | None = None) -> str:
    """The file's text: 2-space indented JSON, identifying keys first, newline-terminated."""
    schema = transaction_json_schema() if schema is None else schema
    ordered = {k: schema[k] for k in _HEAD if k in schema}
    ordered.update({k: v for k, v in schema.items() if k not in ordered})
    return json.dumps(ordered, indent=2, ensure_ascii=False) + "\n"


def write_schema(path: Path = SCHEMA_PATH) -> Path:
    """(Re)write the schema file; returns its path."""
    path.write_text(render_schema(), encoding="utf-8")
    return path


def is_current(path: Path = SCHEMA_PATH) -> bool:
    """Whether the file on disk is exactly what :func:`render_schema` produces now."""
    return path.is_file() and path.read_text(encoding="utf-8") == render_schema()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streams.schema_file", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the file is out of date")
    parser.add_argument("--path", type=Path, default=SCHEMA_PATH)
    args = parser.parse_args(argv)
    if args.check:
        if is_current(args.path):
            return 0
        print(f"{args.path} is out of date: run python -m streams.schema_file", file=sys.stderr)
        return 1
    print(write_schema(args.path))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
