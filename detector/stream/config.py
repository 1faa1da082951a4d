"""Worker configuration: defaults, then an optional TOML config file, then DETECTOR_* environment variables,
then command-line options.

Each setting is written down once, as a WorkerConfig field with its default and help (`setting()`);
`SETTINGS`, `detector worker --help`, `--print-config` and the README's table are derived from those fields,
so neither the defaults nor the documentation can drift from what is read.

Why not pydantic-settings (2.16, evaluated for this): WorkerConfig is a frozen stdlib dataclass that code and
tests build directly (`WorkerConfig(...)`, `dataclasses.replace`, `asdict`); a BaseSettings model is not one
and reads os.environ whenever it is built, so it could only sit beside it, every setting declared twice
again. And of what it offers, the parts this loader needs do not fit: its TOML source lets tomllib's error
through, which quotes a secret's character ("Illegal character '\x7f'"), so the file is parsed here anyway;
its secrets source reads a directory of files named after fields and strips all whitespace (a password's
own spaces) with no size limit, where a Kubernetes-mounted `*_file` path is wanted; its env source reads
only os.environ (no mapping to pass, as `load_config(env=...)` does); and with case_sensitive=True it looks
for DETECTOR_batch_size, silently ignoring DETECTOR_BATCH_SIZE. What would remain is the prefix lookup
and the scalar coercion below, not worth five more runtime packages (pydantic, pydantic-core, ...).
"""

from __future__ import annotations

import hmac
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from pathlib import Path
from typing import Any

from detector.rules.exceptions import ExceptionsError, load_exceptions
from detector.sources import SOURCES, MappingError, add_source_maps

ENV_PREFIX = "DETECTOR_"
AUTO = "auto"


class ConfigError(ValueError):
    """A setting with a value that cannot be used; the message names the setting (never a secret's value)."""


REDACTED = "***"
# A password file is a few hundred bytes at most (an Event Hubs connection string is ~200); a bigger one
# is a wrong path (a log, a device), and reading it whole would only waste memory.
MAX_SECRET_FILE_BYTES = 64 * 1024


class Secret:
    """A credential whose repr and str are redacted; `reveal()` is called only where a Kafka client is built.

    Deliberately not a str subclass: str's own __format__, concatenation, join and json encoding would
    all use the real characters, so an f-string or a log call could print it.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str = "") -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        # Whether a secret is set is worth showing (a missing password is a common mistake); its value is not.
        return f"Secret({REDACTED!r})" if self._value else "Secret('')"

    def __str__(self) -> str:
        return REDACTED if self._value else ""

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)


def setting(
    default: Any = "", help: str = "", *, factory: Callable[[], Any] | None = None, secret: bool = False
) -> Any:
    """A WorkerConfig field with its default and help: the one place a setting is written down.

    `secret`: a credential, held as a Secret, never shown; it may instead be read from the file named by
    the setting <name>_file.
    """
    metadata = {"help": help, "secret": secret}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class WorkerConfig:
    """Every setting of the worker, its default and its help, in the order `--help` and the README list them.

    Topics, rules and source maps are given as comma lists (see SETTINGS) and held parsed.
    """

    bootstrap_servers: str = setting("127.0.0.1:9092", "Kafka bootstrap servers, comma-separated")
    consumer_group: str = setting(
        "netsupport-detector", "consumer group of the ingest consumer (agents use <group>-agents)"
    )
    topics: dict[str, str] = setting(  # noqa: RUF009 (a field()): topic -> source name or "auto"
        factory=dict,
        help="input topics as TOPIC[=SOURCE] pairs, comma-separated; SOURCE is a source name or 'auto' "
        "(detect per record). Default: telemetry.<source> for each source, the eight built-in ones and "
        "those of source_maps",
    )
    source_maps: tuple[str, ...] = setting(
        (),
        "mapping files (TOML) that each add a source, comma-separated (see the README, 'Adding a source'); "
        "a file that fails to load stops the worker at start with the reason",
    )
    alerts_topic: str = setting("detections.alerts", "topic for alerts (keyed by host) and suppression records")
    deadletter_topic: str = setting(
        "detections.deadletter", "topic for rejected records (original bytes + reason headers)"
    )
    matches_topic: str = setting("detections.matches", "internal topic from the ingest consumer to the Faust agents")
    topic_partitions: int = setting(4, "partitions for the output and internal topics the worker creates if missing")
    topic_replication: int = setting(1, "replication factor for topics the worker creates")
    rules: tuple[str, ...] = setting((), "rule files (TOML), comma-separated; default: the built-in NetSupport rule")
    exceptions: tuple[str, ...] = setting(
        (),
        "rule exceptions as Kibana's 'export exception list' writes them (NDJSON), comma-separated files; "
        "re-read when they change, without a restart (see the README, 'Tuning with rule exceptions')",
    )
    exceptions_reload_interval: float = setting(5.0, "seconds between checks of the exceptions files for changes")
    max_signals: int = setting(-1, "alerts per rule per window; -1 = the rule's max_signals, 0 = no cap")
    cap_interval: str = setting("", "length of a cap window, e.g. 5m; default: the rule's interval")
    suppress_by: tuple[str, ...] = setting(
        (),
        "alert suppression: 1-3 fields, comma-separated; one alert per group of their values per suppress_for "
        "of event time, later ones counted into it (replaces a rule's [rule.alert_suppression] group_by)",
    )
    suppress_for: str = setting(
        "", "alert suppression window, e.g. 5m (s, m or h); default: the rule's own, else its interval"
    )
    prevalence_horizon: str = setting("30d", "fleet prevalence forgets executions older than this, e.g. 30d")
    prevalence_max_hosts: int = setting(4000, "hosts kept exactly per executable; more are only counted")
    prevalence_max_executables: int = setting(
        200_000, "executables kept in the prevalence table per matches partition (least recently seen out first)"
    )
    prefilter: bool = setting(True, "skip, unparsed, records that cannot match (false: parse and validate all)")
    max_record_bytes: int = setting(1 << 20, "records larger than this go to the dead-letter topic")
    deadletter_max_bytes: int = setting(
        512 * 1024,
        "largest dead letter (value, key and headers); a longer record is cut to fit, with headers "
        "detector.truncated, detector.original_size and detector.original_sha256. Lowered at start to what "
        "the dead-letter topic accepts (its max.message.bytes); at least 4096",
    )
    validate_sample_rate: float = setting(
        0.0005,
        "share of the records the prefilter skips that are parsed and validated anyway (every 1/rate-th per "
        "topic), counted in detector_records_validated_total; invalid ones are dead-lettered. Catches a "
        "misrouted or changed input. 0 = off",
    )
    validate_sample_interval: float = setting(
        1.0,
        "seconds after which a topic's next skipped record is validated even if the rate has not picked one, "
        "so slow topics are checked too; 0 = the rate alone",
    )
    batch_size: int = setting(2000, "records per consume() batch of the ingest consumer")
    batch_timeout: float = setting(0.005, "seconds consume() waits to fill a batch (a latency floor at low rates)")
    session_timeout: float = setting(10.0, "seconds without heartbeat before a worker's partitions move to another")
    auto_offset_reset: str = setting("earliest", "where a new consumer group starts: earliest or latest")
    http_host: str = setting("127.0.0.1", "address of the HTTP port (/healthz, /readyz, /metrics); 0.0.0.0 in a pod")
    http_port: int = setting(8000, "HTTP port serving /healthz, /readyz and /metrics")
    security_protocol: str = setting("PLAINTEXT", "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")
    sasl_mechanism: str = setting("PLAIN", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (Event Hubs: PLAIN)")
    sasl_username: str = setting("", "SASL username (Event Hubs: $ConnectionString)")
    sasl_password: Secret = setting(  # noqa: RUF009 (a field())
        factory=Secret, help="SASL password (Event Hubs: the connection string); never shown", secret=True
    )
    # Where sasl_password was read from, if from a file (shown, unlike the value).
    sasl_password_file: str = setting(
        "", "file holding the SASL password instead (e.g. a mounted Kubernetes Secret); trailing newline ignored"
    )
    ssl_cafile: str = setting("", "CA bundle to verify the brokers (default: the system's)")
    ssl_certfile: str = setting("", "client certificate for mutual TLS")
    ssl_keyfile: str = setting("", "client private key for mutual TLS")
    ssl_key_password: Secret = setting(  # noqa: RUF009 (a field())
        factory=Secret, help="password of an encrypted client private key; never shown", secret=True
    )
    ssl_key_password_file: str = setting("", "file holding the client key's password instead; trailing newline ignored")
    log_level: str = setting("info", "log level: debug, info, warning, error")

    def kafka_client_config(self) -> dict[str, Any]:
        """librdkafka settings shared by every confluent-kafka client of the worker.

        The result holds revealed credentials: pass it to a client, never to a log or a message.
        """
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
        }
        if self.security_protocol.startswith("SASL"):
            conf.update(
                {
                    "sasl.mechanism": self.sasl_mechanism,
                    "sasl.username": self.sasl_username,
                    "sasl.password": self.sasl_password.reveal(),
                }
            )
        if self.security_protocol.endswith("SSL"):
            for key, value in (
                ("ssl.ca.location", self.ssl_cafile),
                ("ssl.certificate.location", self.ssl_certfile),
                ("ssl.key.location", self.ssl_keyfile),
            ):
                if value:
                    conf[key] = value
            if self.ssl_key_password:
                conf["ssl.key.password"] = self.ssl_key_password.reveal()
        return conf


def _given_form(value: Any) -> Any:
    """A setting's value as it is given (config file, environment): topics and lists as comma lists."""
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, tuple):
        return ",".join(value)
    return value


@dataclass(frozen=True)
class Setting:
    """One setting as the loader and the documentation see it, read from WorkerConfig's field."""

    name: str  # attribute and config-file key; env var is DETECTOR_<NAME upper>
    default: Any  # in the form it is given in ("" for unset lists and secrets); its type is the value's
    help: str
    secret: bool = False

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


def _setting(f: Field[Any]) -> Setting:
    secret = bool(f.metadata["secret"])
    default = f.default if f.default_factory is MISSING else f.default_factory()
    return Setting(f.name, "" if secret else _given_form(default), f.metadata["help"], secret)


SETTINGS: tuple[Setting, ...] = tuple(_setting(f) for f in fields(WorkerConfig))

_BY_NAME = {s.name: s for s in SETTINGS}

INPUT_TOPIC_PREFIX = "telemetry."


def input_topic(source: str) -> str:
    """The input topic named after a source, telemetry.<source>: its topic unless `topics` says otherwise."""
    return INPUT_TOPIC_PREFIX + source


def topic_source(topic: str) -> str | None:
    """The inverse of input_topic: the known source a topic is named after, or None."""
    source = topic.removeprefix(INPUT_TOPIC_PREFIX)
    return source if topic.startswith(INPUT_TOPIC_PREFIX) and source in SOURCES else None


def default_topics() -> dict[str, str]:
    return {input_topic(name): name for name in SOURCES}


def parse_topics(text: str) -> dict[str, str]:
    """'a=crowdstrike_fdr,b,c=auto' -> {'a': 'crowdstrike_fdr', 'b': <source b names or auto>, 'c': 'auto'}."""
    result: dict[str, str] = {}
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        topic, _, source = item.partition("=")
        topic, source = topic.strip(), source.strip()
        if not source:
            # A bare telemetry.<source> topic names its source; any other bare topic is auto-detected.
            source = topic_source(topic) or AUTO
        if source != AUTO and source not in SOURCES:
            raise ConfigError(
                f"topics: unknown source {source!r} for topic {topic!r}; use one of {', '.join(SOURCES)} or 'auto'"
            )
        result[topic] = source
    if not result:
        raise ConfigError("topics: no topic given")
    return result


def _coerce(setting: Setting, value: Any) -> Any:
    if setting.secret:
        # Checked apart from the others so that no message can ever quote the value.
        if not isinstance(value, str):
            raise ConfigError(f"{setting.name} ({setting.env}): expected a string")
        return value
    kind = type(setting.default)
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"expected true or false, got {value!r}")
        if kind is int:
            return int(value)
        if kind is float:
            return float(value)
        if isinstance(value, list):
            return ",".join(str(v) for v in value)
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{setting.name} ({setting.env}): {exc}") from None


def load_config(
    config_file: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> WorkerConfig:
    """Defaults < config file < environment < explicit overrides (command-line options)."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {s.name: s.default for s in SETTINGS}
    if config_file:
        try:
            text = Path(config_file).read_text()
            doc = tomllib.loads(text)
        except OSError as exc:
            raise ConfigError(f"cannot read config file {config_file}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            # Its message quotes the offending bytes, which may be part of a password.
            raise ConfigError(f"config file {config_file}: not UTF-8 text") from None
        except tomllib.TOMLDecodeError as exc:
            raise _toml_error(config_file, text, exc) from None
        for key, value in doc.items():
            if key not in _BY_NAME:
                raise ConfigError(f"config file {config_file}: unknown setting {key!r}")
            values[key] = _coerce(_BY_NAME[key], value)
    for s in SETTINGS:
        if s.env in env:
            values[s.name] = _coerce(s, env[s.env])
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = _coerce(_BY_NAME[key], value)
    for s in SETTINGS:
        if s.secret:
            values[s.name] = _resolve_secret(s, values[s.name], values.get(f"{s.name}_file", ""))
    values["source_maps"] = _comma_list(values["source_maps"])
    try:
        add_source_maps(values["source_maps"])  # before the topics, which may name these sources
    except MappingError as exc:
        raise _error("source_maps", str(exc)) from None
    values["topics"] = parse_topics(values["topics"]) if values["topics"] else default_topics()
    values["rules"] = _comma_list(values["rules"])
    values["suppress_by"] = _comma_list(values["suppress_by"])
    values["exceptions"] = _comma_list(values["exceptions"])
    try:
        load_exceptions(values["exceptions"])  # a broken file stops the worker at start, with the reason
    except ExceptionsError as exc:
        raise _error("exceptions", str(exc)) from None
    _check(values)
    return WorkerConfig(**values)


def _comma_list(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def _error(name: str, message: str) -> ConfigError:
    return ConfigError(f"{name} ({_BY_NAME[name].env}): {message}")


def _check(values: Mapping[str, Any]) -> None:
    """The checks a value's type does not make."""
    choices = {
        "auto_offset_reset": ("earliest", "latest"),
        "security_protocol": ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"),
        "sasl_mechanism": ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"),
    }
    for name, allowed in choices.items():
        if values[name] not in allowed:
            raise _error(name, f"expected {', '.join(allowed[:-1])} or {allowed[-1]}")
    if values["batch_size"] < 1:
        raise _error("batch_size", "must be at least 1")
    if values["deadletter_max_bytes"] < 4096:
        raise _error("deadletter_max_bytes", "must be at least 4096 (room for the dead letter's headers)")
    if not 0 <= values["validate_sample_rate"] <= 1:
        raise _error("validate_sample_rate", "must be between 0 and 1")
    if values["exceptions_reload_interval"] <= 0:
        raise _error("exceptions_reload_interval", "must be more than 0")
    if values["validate_sample_interval"] < 0:
        raise _error("validate_sample_interval", "must be 0 or more")
    if len(values["suppress_by"]) > 3:
        raise _error("suppress_by", "at most 3 fields")
    from detector.rules.model import duration_seconds, suppression_duration

    for name in ("prevalence_horizon", "cap_interval"):
        if values[name]:
            try:
                duration_seconds(values[name])
            except ValueError as exc:
                raise _error(name, str(exc)) from None
    if values["prevalence_max_hosts"] < 1 or values["prevalence_max_executables"] < 1:
        raise _error("prevalence_max_hosts", "prevalence_max_hosts and prevalence_max_executables must be at least 1")
    if values["suppress_for"]:
        try:
            suppression_duration(values["suppress_for"])
        except ValueError as exc:
            raise _error("suppress_for", str(exc)) from None


def _toml_error(config_file: str | Path, text: str, exc: tomllib.TOMLDecodeError) -> ConfigError:
    """The parser's message, unless the error is on a secret's line: it may quote a character of the value."""
    where = re.search(r"at line (\d+)", str(exc))
    lines = text.splitlines()
    if where and int(where.group(1)) <= len(lines):
        line = lines[int(where.group(1)) - 1]
        for s in SETTINGS:
            if s.secret and re.match(rf"\s*[\"']?{s.name}[\"']?\s*=", line):
                return ConfigError(f"config file {config_file}: line {where.group(1)}: invalid TOML value for {s.name}")
    return ConfigError(f"config file {config_file}: {exc}")


def read_secret_file(setting: Setting, path: str) -> str:
    """The credential in `path`, as Kubernetes mounts a Secret's key: one value, maybe a trailing newline."""
    where = f"{setting.name}_file ({setting.env}_FILE)"
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SECRET_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_SECRET_FILE_BYTES:
        raise ConfigError(f"{where}: {path} is larger than {MAX_SECRET_FILE_BYTES // 1024} KiB: not a secret file")
    try:
        value = data.decode()
    except UnicodeDecodeError:
        # `from None`: the decode error quotes the offending byte, a piece of the secret.
        raise ConfigError(f"{where}: {path} is not UTF-8 text") from None
    # `echo pw > file` and most editors end the file with a newline that is not part of the password.
    value = value.rstrip("\r\n")
    if not value.strip():
        raise ConfigError(f"{where}: {path} is empty")
    return value


def _resolve_secret(setting: Setting, value: str, path: str) -> Secret:
    if value and path:
        raise ConfigError(
            f"{setting.name} ({setting.env}) and {setting.name}_file ({setting.env}_FILE) are both set: use one"
        )
    return Secret(read_secret_file(setting, path) if path else value)


def settings_help() -> str:
    lines = ["settings (environment variable, config-file key, default):"]
    for s in SETTINGS:
        default = "-" if s.secret or s.default == "" else s.default
        lines.append(f"  {s.env:<30} {s.help} [default: {default}]")
    return "\n".join(lines)


def effective_settings(cfg: WorkerConfig) -> dict[str, Any]:
    """Each setting's value in `cfg`, in the form it is given in (topics and rules as comma lists).

    Secrets stay Secret objects, which print as '***', so every display built from this redacts them.
    """
    return {s.name: _given_form(getattr(cfg, s.name)) for s in SETTINGS}


def settings_table() -> str:
    """The README's settings table (regenerate: python -c 'from detector.stream.config import settings_table as
    t; print(t())')."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for s in SETTINGS:
        default = "—" if s.default == "" else f"`{s.default}`"
        lines.append(f"| `{s.env}` | {default} | {s.help} |")
    return "\n".join(lines)
