"""Pieces shared by the subcommands: rule/source options and stdout handling."""

from __future__ import annotations

import argparse
import os
import sys

from detector.rules.model import Rule, load_rules
from detector.sources import SOURCES


class UsageError(Exception):
    """Bad command-line usage found after parsing; printed as one line, exit status 2."""


def add_rule_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rule",
        action="append",
        metavar="PATH",
        default=[],
        help="rule file in the elastic/detection-rules TOML layout (repeatable; default: the built-in NetSupport rule)",
    )


def add_source_option(parser: argparse.ArgumentParser, what: str = "record") -> None:
    parser.add_argument(
        "--source",
        choices=sorted(SOURCES),
        metavar="NAME",
        help=f"treat every {what} as coming from this source (default: detect each record's source). "
        f"One of: {', '.join(SOURCES)}",
    )


def rules_from_args(args: argparse.Namespace) -> list[Rule]:
    return load_rules(args.rule)


def silence_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so interpreter shutdown does not complain."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
