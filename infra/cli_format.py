"""How ``fraudstream`` help reads: defaults shown, exit codes in every epilog, the version."""

from __future__ import annotations

import argparse


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default (unless it is empty: None, "", False, []) and keeps
    descriptions' line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        help_ = action.help or ""
        default = action.default
        if ("%(default)" in help_ or default in (None, "", False, [], argparse.SUPPRESS)
                or not action.option_strings and action.nargs not in ("?", "*")):
            return help_
        return help_ + " (default: %(default)s)"


DESCRIPTION = ("Streaming, real-time card fraud detection: one entry point for operators, "
               "ML engineers and the demo.")
EXIT_CODES = """exit codes:
  0    success
  1    runtime failure (service down, model unusable, failed check or gate)
  2    usage or configuration error (bad option, invalid FRAUDSTREAM_* setting, bad
       input file)
  130  interrupted

settings come from FRAUDSTREAM_* environment variables: `fraudstream config` prints them."""


def version() -> str:
    from importlib import metadata

    try:
        return metadata.version("fraudstream")
    except metadata.PackageNotFoundError:
        return "unknown"
