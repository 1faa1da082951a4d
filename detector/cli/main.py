"""`detector`: the command line. Each subcommand lives in its own module; this one wires them up."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from detector import __version__
from detector.cli import common, rules_cmd, scan
from detector.inputs import InputError
from detector.rules.model import RuleError

EPILOG = """\
examples:
  detector scan samples/corpus.ndjson.gz            hunt through files, alerts as NDJSON on stdout
  detector scan --source crowdstrike_fdr fdr/*.gz   every record is CrowdStrike FDR
  zcat big.gz | detector scan -                     read stdin
  detector normalize --source m365_defender x.json  show the ECS events a source yields
  detector rules show                               print the loaded rule
  detector worker --help                            run on Kafka (streaming)
  detector replay --help                            produce files onto the source topics
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="detector",
        description=(
            "Detect NetSupport Manager (client32.exe) execution from unusual paths with Elastic's rule "
            "5f73aef2-7abc-4fd9-ac0d-ab8ec3e13891, on files or on Kafka streams, over eight telemetry sources."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"detector {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    scan.register(sub)
    scan.register_normalize(sub)
    rules_cmd.register(sub)
    # The streaming commands import Faust and confluent-kafka; keep them out of the file modes' start-up.
    from detector.cli import stream_cmds

    stream_cmds.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except (RuleError, InputError, common.UsageError) as exc:
        common.say(f"detector: error: {exc}")
        return common.EXIT_USAGE
    except KeyboardInterrupt:
        common.say("detector: interrupted")
        return common.EXIT_INTERRUPTED
    except BrokenPipeError:
        # A reader like `head` closed our stdout: say so in one line, and exit as tools killed by SIGPIPE do,
        # so `set -o pipefail` scripts see the same status they get from `cat`.
        common.silence_stdout()
        common.say("detector: stdout was closed before the run finished (broken pipe); stopped")
        return common.EXIT_BROKEN_PIPE
    return code


if __name__ == "__main__":
    sys.exit(main())
