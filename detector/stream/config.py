"""Worker configuration: defaults, then an optional TOML config file, then DETECTOR_* environment variables.

One table (`SETTINGS`) describes every setting once; `detector worker --help` and the README are
written from it, so the documentation cannot drift from what is read.
"""

from __future__ import annotations

import hmac
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

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


@dataclass(frozen=True)
class Setting:
    name: str  # attribute and config-file key; env var is DETECTOR_<NAME upper>
    default: Any
    help: str
    # A credential: held as a Secret, never shown, and may instead be read from the file named by <name>_file.
    secret: bool = False

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


SETTINGS: tuple[Setting, ...] = (
    Setting("bootstrap_servers", "127.0.0.1:9092", "Kafka bootstrap servers, comma-separated"),
    Setting(
        "consumer_group", "netsupport-detector", "consumer group of the ingest consumer (agents use <group>-agents)"
    ),
    Setting(
        "topics",
        "",
        "input topics as TOPIC[=SOURCE] pairs, comma-separated; SOURCE is a source name or 'auto' "
        "(detect per record). Default: telemetry.<source> for each source, the eight built-in ones and "
        "those of source_maps",
    ),
    Setting(
        "source_maps",
        "",
        "mapping files (TOML) that each add a source, comma-separated (see the README, 'Adding a source'); "
        "a file that fails to load stops the worker at start with the reason",
    ),
    Setting("alerts_topic", "detections.alerts", "topic for alerts (keyed by host) and suppression records"),
    Setting(
        "deadletter_topic", "detections.deadletter", "topic for rejected records (original bytes + reason headers)"
    ),
    Setting("matches_topic", "detections.matches", "internal topic from the ingest consumer to the Faust agents"),
    Setting("topic_partitions", 4, "partitions for the output and internal topics the worker creates if missing"),
    Setting("topic_replication", 1, "replication factor for topics the worker creates"),
    Setting("rules", "", "rule files (TOML), comma-separated; default: the built-in NetSupport rule"),
    Setting("max_signals", -1, "alerts per rule per window; -1 = the rule's max_signals, 0 = no cap"),
    Setting("cap_interval", "", "length of a cap window, e.g. 5m; default: the rule's interval"),
    Setting("prefilter", True, "skip, unparsed, records that cannot match (false: parse and validate all)"),
    Setting("max_record_bytes", 1 << 20, "records larger than this go to the dead-letter topic"),
    Setting(
        "deadletter_max_bytes",
        512 * 1024,
        "largest dead letter (value, key and headers); a longer record is cut to fit, with headers "
        "detector.truncated, detector.original_size and detector.original_sha256. Lowered at start to what "
        "the dead-letter topic accepts (its max.message.bytes); at least 4096",
    ),
    Setting(
        "validate_sample_rate",
        0.0005,
        "share of the records the prefilter skips that are parsed and validated anyway (every 1/rate-th per "
        "topic), counted in detector_records_validated_total; invalid ones are dead-lettered. Catches a "
        "misrouted or changed input. 0 = off",
    ),
    Setting(
        "validate_sample_interval",
        1.0,
        "seconds after which a topic's next skipped record is validated even if the rate has not picked one, "
        "so slow topics are checked too; 0 = the rate alone",
    ),
    Setting("batch_size", 2000, "records per consume() batch of the ingest consumer"),
    Setting("batch_timeout", 0.02, "seconds consume() waits to fill a batch (a latency floor at low rates)"),
    Setting("session_timeout", 10.0, "seconds without heartbeat before a worker's partitions move to another"),
    Setting("auto_offset_reset", "earliest", "where a new consumer group starts: earliest or latest"),
    Setting("http_host", "127.0.0.1", "address of the HTTP port (/healthz, /readyz, /metrics); 0.0.0.0 in a pod"),
    Setting("http_port", 8000, "HTTP port serving /healthz, /readyz and /metrics"),
    Setting("security_protocol", "PLAINTEXT", "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"),
    Setting("sasl_mechanism", "PLAIN", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (Event Hubs: PLAIN)"),
    Setting("sasl_username", "", "SASL username (Event Hubs: $ConnectionString)"),
    Setting("sasl_password", "", "SASL password (Event Hubs: the connection string); never shown", secret=True),
    Setting(
        "sasl_password_file",
        "",
        "file holding the SASL password instead (e.g. a mounted Kubernetes Secret); trailing newline ignored",
    ),
    Setting("ssl_cafile", "", "CA bundle to verify the brokers (default: the system's)"),
    Setting("ssl_certfile", "", "client certificate for mutual TLS"),
    Setting("ssl_keyfile", "", "client private key for mutual TLS"),
    Setting("ssl_key_password", "", "password of an encrypted client private key; never shown", secret=True),
    Setting("ssl_key_password_file", "", "file holding the client key's password instead; trailing newline ignored"),
    Setting("log_level", "info", "log level: debug, info, warning, error"),
)

_BY_NAME = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class WorkerConfig:
    bootstrap_servers: str = "127.0.0.1:9092"
    consumer_group: str = "netsupport-detector"
    topics: dict[str, str] = field(default_factory=dict)  # topic -> source name or "auto"
    alerts_topic: str = "detections.alerts"
    deadletter_topic: str = "detections.deadletter"
    matches_topic: str = "detections.matches"
    topic_partitions: int = 4
    topic_replication: int = 1
    source_maps: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()
    max_signals: int = -1
    cap_interval: str = ""
    prefilter: bool = True
    max_record_bytes: int = 1 << 20
    deadletter_max_bytes: int = 512 * 1024
    validate_sample_rate: float = 0.0005
    validate_sample_interval: float = 1.0
    batch_size: int = 2000
    batch_timeout: float = 0.02
    session_timeout: float = 10.0
    auto_offset_reset: str = "earliest"
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "PLAIN"
    sasl_username: str = ""
    sasl_password: Secret = field(default_factory=Secret)
    sasl_password_file: str = ""  # where sasl_password was read from, if from a file (shown, unlike the value)
    ssl_cafile: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""
    ssl_key_password: Secret = field(default_factory=Secret)
    ssl_key_password_file: str = ""
    log_level: str = "info"

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


def default_topics() -> dict[str, str]:
    return {f"telemetry.{name}": name for name in SOURCES}


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
            suffix = topic.removeprefix("telemetry.")
            source = suffix if topic.startswith("telemetry.") and suffix in SOURCES else AUTO
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
    source_maps = tuple(p.strip() for p in str(values["source_maps"]).split(",") if p.strip())
    try:
        add_source_maps(source_maps)  # before the topics, which may name these sources
    except MappingError as exc:
        raise ConfigError(f"source_maps ({_BY_NAME['source_maps'].env}): {exc}") from None
    topics = parse_topics(values["topics"]) if values["topics"] else default_topics()
    rules = tuple(p.strip() for p in str(values["rules"]).split(",") if p.strip())
    if values["auto_offset_reset"] not in ("earliest", "latest"):
        raise ConfigError("auto_offset_reset: expected earliest or latest")
    if values["security_protocol"] not in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"):
        raise ConfigError("security_protocol: expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")
    if values["sasl_mechanism"] not in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
        raise ConfigError("sasl_mechanism: expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
    if values["batch_size"] < 1:
        raise ConfigError("batch_size: must be at least 1")
    if values["deadletter_max_bytes"] < 4096:
        raise ConfigError("deadletter_max_bytes: must be at least 4096 (room for the dead letter's headers)")
    if not 0 <= values["validate_sample_rate"] <= 1:
        raise ConfigError("validate_sample_rate: must be between 0 and 1")
    if values["validate_sample_interval"] < 0:
        raise ConfigError("validate_sample_interval: must be 0 or more")
    known = {f.name for f in fields(WorkerConfig)}
    values = {k: v for k, v in values.items() if k in known}
    values["topics"] = topics
    values["rules"] = rules
    values["source_maps"] = source_maps
    return WorkerConfig(**values)


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
    result: dict[str, Any] = {}
    for s in SETTINGS:
        if not hasattr(cfg, s.name):
            continue
        value = getattr(cfg, s.name)
        if isinstance(value, dict):
            value = ",".join(f"{k}={v}" for k, v in value.items())
        elif isinstance(value, tuple):
            value = ",".join(value)
        result[s.name] = value
    return result
