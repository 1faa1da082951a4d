"""`detector worker` (the streaming detector on Kafka) and `detector replay` (files onto topics)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from detector.cli.common import (
    UsageError,
    add_rule_option,
    add_source_option,
    apply_source_options,
    suppression_over,
)
from detector.stream.config import (
    ConfigError,
    Secret,
    WorkerConfig,
    effective_settings,
    input_topic,
    load_config,
    settings_help,
)

WORKER_DESCRIPTION = """\
Run the rules on Kafka: consume raw telemetry from one topic per source (default telemetry.<source>),
publish alerts to detections.alerts (keyed by host) and rejected records to detections.deadletter,
with at-least-once delivery. One HTTP port serves /healthz, /readyz and /metrics (Prometheus).
Settings come from defaults, then --config FILE (TOML, keys as below in lower case without the
DETECTOR_ prefix), then DETECTOR_* environment variables, then these options. SIGTERM stops the worker
gracefully: in-flight work is finished and committed, exit status 0."""


def register(sub: Any) -> None:
    w = sub.add_parser(
        "worker",
        help="run the streaming detector on Kafka (Faust app)",
        description=WORKER_DESCRIPTION,
        epilog=settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    w.add_argument("--config", metavar="FILE", help="TOML config file (see settings below)")
    w.add_argument("--bootstrap-servers", metavar="HOSTS", help="overrides DETECTOR_BOOTSTRAP_SERVERS")
    w.add_argument("--consumer-group", metavar="GROUP", help="overrides DETECTOR_CONSUMER_GROUP")
    w.add_argument("--topics", metavar="T[=SRC],...", help="overrides DETECTOR_TOPICS")
    w.add_argument("--http-port", type=int, metavar="PORT", help="overrides DETECTOR_HTTP_PORT")
    w.add_argument("--max-signals", type=int, metavar="N", help="overrides DETECTOR_MAX_SIGNALS")
    w.add_argument("--cap-interval", metavar="DURATION", help="overrides DETECTOR_CAP_INTERVAL, e.g. 5m")
    w.add_argument("--suppress-by", metavar="FIELD,...", help="overrides DETECTOR_SUPPRESS_BY, e.g. host.name")
    w.add_argument("--suppress-for", metavar="DURATION", help="overrides DETECTOR_SUPPRESS_FOR, e.g. 5m")
    w.add_argument("--no-create-topics", action="store_true", help="do not create missing topics at start")
    w.add_argument(
        "--print-config",
        action="store_true",
        help="print the effective settings as a TOML config file, secrets left out, and exit",
    )
    add_rule_option(w)
    w.set_defaults(func=run_worker)

    r = sub.add_parser(
        "replay",
        help="produce raw records from files onto the source topics",
        description=(
            "Produce raw records from files (NDJSON, .gz, JSON arrays, -) onto Kafka, each line's bytes as they "
            "are, to telemetry.<source>. With --source or --topic lines are not parsed, so malformed records are "
            "replayed too; otherwise each record's source is detected to choose its topic. Kafka settings are "
            "the worker's (DETECTOR_BOOTSTRAP_SERVERS, security settings, --config)."
        ),
    )
    r.add_argument("files", nargs="+", metavar="FILE")
    add_source_option(r, "line")
    r.add_argument("--topic", help="send every record to this topic instead of telemetry.<source>")
    r.add_argument(
        "--rate", type=float, default=0.0, metavar="N", help="records per second (default: as fast as possible)"
    )
    r.add_argument("--config", metavar="FILE", help="TOML config file, as for the worker")
    r.add_argument("--bootstrap-servers", metavar="HOSTS", help="overrides DETECTOR_BOOTSTRAP_SERVERS")
    r.add_argument("--create-topics", action="store_true", help="create missing target topics first")
    r.set_defaults(func=run_replay)


def _config(args: argparse.Namespace, **extra: Any) -> WorkerConfig:
    overrides = {"bootstrap_servers": args.bootstrap_servers, **extra}
    try:
        return load_config(args.config, overrides=overrides)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    # A JSON string is a TOML basic string (same escapes); non-ASCII stays literal, as TOML wants no surrogates.
    return json.dumps(str(value), ensure_ascii=False)


def format_config(cfg: WorkerConfig) -> str:
    """The effective settings as TOML that `--config` accepts back.

    A secret that is set becomes a comment: printing '***' as its value would, fed back, set that as the password.
    """
    lines = ["# effective settings of `detector worker`; secrets are never printed"]
    for name, value in effective_settings(cfg).items():
        if isinstance(value, Secret):
            lines.append(f"# {name} = (set, not shown)" if value else f'{name} = ""')
        else:
            lines.append(f"{name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def run_worker(args: argparse.Namespace) -> int:
    import faust

    from detector.metrics import Metrics
    from detector.rules.model import load_rules
    from detector.stream.app import changelog_topics, create_app
    from detector.stream.redaction import install_log_redaction
    from detector.stream.topics import ensure_topics, worker_topics

    cfg = _config(
        args,
        consumer_group=args.consumer_group,
        topics=args.topics,
        http_port=args.http_port,
        max_signals=args.max_signals,
        cap_interval=args.cap_interval,
        suppress_by=args.suppress_by,
        suppress_for=args.suppress_for,
        rules=",".join(args.rule) if args.rule else None,
    )
    if args.print_config:
        sys.stdout.write(format_config(cfg))
        return 0
    # Before anything logs: at debug level aiokafka logs the SASL exchange itself.
    install_log_redaction(cfg)
    rules = suppression_over(load_rules(cfg.rules), list(cfg.suppress_by) or None, cfg.suppress_for or None)
    logging.basicConfig(level=cfg.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Secrets print as *** (Secret's str), so the one line that says what this worker runs with is safe to log.
    settings = " ".join(f"{k}={v}" for k, v in effective_settings(cfg).items())
    logging.getLogger("detector.worker").info("settings: %s", settings)
    app = create_app(cfg, rules, Metrics())
    if not args.no_create_topics:
        # Also the start-up check: wrong credentials or an untrusted certificate end the worker here, in one
        # line naming the cause, before Faust starts (without it, aiokafka's refusal stops it, less plainly).
        # The tables' changelogs too: created by Faust just before it joins, they could be missing from its
        # consumer's metadata at the first assignment, and the first table write fail (PartitionsMismatch).
        try:
            ensure_topics(cfg, worker_topics(cfg, include_inputs=True), compacted=changelog_topics(app))
        except ConnectionError as exc:
            raise UsageError(str(exc)) from None
    worker = faust.Worker(app, loglevel=cfg.log_level, quiet=True)
    # At log level warning or above, Faust's terminal spinner sets the root logger to DEBUG (to spin on every
    # record): every library's debug record would then be built, and aiokafka logs each request at debug.
    worker.spinner = None
    worker.execute_from_commandline()  # returns via SystemExit with the worker's exit status
    return 0


def run_replay(args: argparse.Namespace) -> int:
    from detector.inputs import check_readable
    from detector.stream.replay import replay
    from detector.stream.topics import connect, ensure_topics

    apply_source_options(args)
    check_readable(args.files)
    if args.rate < 0:
        raise UsageError("--rate must be positive (or 0 for as fast as possible)")
    cfg = _config(args)
    try:
        if args.create_topics and (args.topic or args.source):
            ensure_topics(cfg, [args.topic or input_topic(args.source)])
        else:
            connect(cfg)  # wrong credentials: one line now, not a minute of retries before "not acknowledged"
    except ConnectionError as exc:
        raise UsageError(str(exc)) from None
    result = replay(cfg, args.files, source=args.source, topic=args.topic, rate=args.rate)
    rate = result.total_sent / result.seconds if result.seconds else 0.0
    per_topic = ", ".join(f"{t} {n:,}" for t, n in sorted(result.sent.items())) or "-"
    print(
        f"replayed {result.total_sent:,} records in {result.seconds:.2f} s ({rate:,.0f} records/s): {per_topic}",
        file=sys.stderr,
    )
    for line in result.skipped[:20]:
        print(f"  not sent: {line}", file=sys.stderr)
    if len(result.skipped) > 20:
        print(f"  ... and {len(result.skipped) - 20} more not sent", file=sys.stderr)
    for line in result.failed[:20]:
        print(f"  delivery failed: {line}", file=sys.stderr)
    for line in result.damaged:
        print(f"  damaged input: {line}", file=sys.stderr)
    return 1 if result.failed or result.damaged else 0
