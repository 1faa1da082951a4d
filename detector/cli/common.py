"""Pieces shared by the subcommands: rule/source options, exit statuses and stdout handling."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import BinaryIO

from detector.rules.model import Rule, load_rules, with_suppression
from detector.sources import SOURCES, MappingError, add_source_maps

# Exit statuses of the file modes (scan, normalize, replay), as their --help documents them.
EXIT_OK = 0
EXIT_DAMAGED = 1  # the run completed, but an input broke off part-way (truncated or corrupt, a read error)
EXIT_USAGE = 2  # nothing was done: bad usage, a missing file, a closed stdin, an unwritable output path
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for tools that die of the signal, as `cat` does

EXIT_STATUS_HELP = """\
exit status:
  0    the run completed: every file was read to its end (bad records are counted and reported, they are
       not failures)
  1    the run completed, but a file was damaged (a truncated or corrupt .gz, a JSON array cut short, a read
       error): the records before the damage and all the other files were still read, and the summary names
       the file and where reading stopped
  2    a usage error, found before anything is read: a missing or unreadable file, a closed stdin, an
       output path that cannot be written, a bad rule file (one line on stderr)
  130  interrupted (Ctrl-C)
  141  stdout was closed early (e.g. piped into `head`): the run stops there, without a summary
"""

INPUT_HELP = """\
input:
  NDJSON, one record per line; gzip-compressed or not (told from the content, not the name); a JSON array,
  whose elements are the records; or JSON documents pretty-printed over several lines, one after another
  (how Elastic's sample events are written). A leading UTF-8 byte-order mark is skipped. Memory stays
  bounded whatever the input: a record over --max-record-bytes is skipped without being held and reported
  as too_large, with its line number (in JSON arrays and documents, its position, 1-based).
"""


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
        metavar="NAME",
        help=f"treat every {what} as coming from this source (default: detect each record's source). "
        f"One of: {', '.join(SOURCES)}, or a source added with --source-map",
    )
    parser.add_argument(
        "--source-map",
        action="append",
        default=[],
        metavar="FILE",
        help="add the source a mapping file defines (TOML, the format of the built-in sources; see the README, "
        "'Adding a source'); repeatable. Its records are detected after the built-in sources' records",
    )


def apply_source_options(args: argparse.Namespace) -> None:
    """Load the --source-map files, then check --source against every source now known."""
    try:
        add_source_maps(args.source_map)
    except MappingError as exc:
        raise UsageError(f"--source-map {exc}") from None
    if args.source is not None and args.source not in SOURCES:
        raise UsageError(f"--source: unknown source {args.source!r}; known: {', '.join(SOURCES)}")


def rules_from_args(args: argparse.Namespace) -> list[Rule]:
    rules = load_rules(args.rule)
    by, for_ = getattr(args, "suppress_by", None), getattr(args, "suppress_for", None)
    return suppression_over(rules, by.split(",") if by else None, for_)


def add_suppression_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--suppress-by",
        metavar="FIELD,...",
        help="alert suppression: one alert per group of these 1-3 fields' values per --suppress-for of event "
        "time, later ones counted into it (kibana.alert.suppression.*); replaces the rule's "
        "[rule.alert_suppression] group_by",
    )
    parser.add_argument(
        "--suppress-for",
        metavar="DURATION",
        help="alert suppression window, e.g. 30s, 5m, 1h (default: the rule's own, else its interval)",
    )


def suppression_over(rules: list[Rule], group_by: list[str] | None, duration: str | None) -> list[Rule]:
    """Every rule with --suppress-by / --suppress-for applied; a bad value is a usage error."""
    try:
        return [with_suppression(r, group_by, duration) for r in rules]
    except ValueError as exc:
        raise UsageError(str(exc)) from None


class OutputFile:
    """A file written at the end of a run, but opened at its start: a path that cannot be written is refused
    before any work is done (asking os.access is not enough: as root it says yes to /proc and /sys).

    Opened for appending, so an existing file keeps its content until `replace` writes the new one; a file this
    run created is removed by `discard` if the run does not finish.
    """

    def __init__(self, path: str, option: str) -> None:
        self.path = path
        self._option = option
        self._created = not os.path.lexists(path)
        try:
            self._fh: BinaryIO = open(path, "ab")  # noqa: SIM115 - held open until replace() or discard()
        except FileNotFoundError:
            raise UsageError(f"{option} {path}: no such directory: {Path(path).parent}") from None
        except IsADirectoryError:
            raise UsageError(f"{option} {path}: is a directory") from None
        except OSError as exc:
            raise UsageError(f"{option} {path}: cannot write: {exc.strerror or exc}") from None

    def replace(self, data: bytes) -> None:
        try:
            with self._fh as fh:
                if fh.seekable():  # not so for /dev/stderr or a pipe, which have nothing to replace
                    fh.truncate(0)
                fh.write(data)
        except OSError as exc:
            raise UsageError(f"{self._option} {self.path}: cannot write: {exc.strerror or exc}") from None

    def discard(self) -> None:
        self._fh.close()
        if self._created:
            with contextlib.suppress(OSError):
                os.unlink(self.path)


def stdout_binary() -> BinaryIO:
    """Binary stdout, or a usage error when it was closed (`>&-` leaves the interpreter without one)."""
    if sys.stdout is None:
        raise UsageError("standard output is closed")
    return sys.stdout.buffer


def say(text: str) -> None:
    """Print to stderr; with stderr closed or gone (`2>&-`, `2>&1 | head`) there is no one left to tell.

    print(file=None) would write to stdout, into the alerts, hence the explicit check.
    """
    if sys.stderr is None:
        return
    try:
        print(text, file=sys.stderr, flush=True)
    except OSError:
        # Point fd 2 at /dev/null too, or the flush at interpreter exit fails again and turns the status into 120.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stderr.fileno())


def silence_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so interpreter shutdown does not complain."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
