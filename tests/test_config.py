"""Worker settings: defaults < config file < DETECTOR_* environment < command-line options."""

from __future__ import annotations

from pathlib import Path

import pytest

from detector.sources import SOURCES
from detector.stream.config import (
    SETTINGS,
    ConfigError,
    WorkerConfig,
    input_topic,
    load_config,
    settings_help,
    topic_source,
)


def test_defaults() -> None:
    cfg = load_config(env={})
    assert cfg.bootstrap_servers == "127.0.0.1:9092"
    assert cfg.topics == {f"telemetry.{s}": s for s in SOURCES}
    assert cfg.alerts_topic == "detections.alerts" and cfg.deadletter_topic == "detections.deadletter"
    assert cfg.kafka_client_config() == {"bootstrap.servers": "127.0.0.1:9092", "security.protocol": "PLAINTEXT"}


def test_file_then_env_then_overrides(tmp_path: Path) -> None:
    f = tmp_path / "w.toml"
    f.write_text('bootstrap_servers = "k1:9092"\nconsumer_group = "file"\nbatch_size = 10\n')
    env = {"DETECTOR_CONSUMER_GROUP": "env", "DETECTOR_PREFILTER": "false"}
    cfg = load_config(f, env=env, overrides={"batch_size": 7})
    assert (cfg.bootstrap_servers, cfg.consumer_group, cfg.batch_size, cfg.prefilter) == ("k1:9092", "env", 7, False)


def test_topic_mapping() -> None:
    cfg = load_config(env={"DETECTOR_TOPICS": "edr.raw=crowdstrike_fdr, mixed=auto, telemetry.endgame, other"})
    assert cfg.topics == {
        "edr.raw": "crowdstrike_fdr",
        "mixed": "auto",
        "telemetry.endgame": "endgame",
        "other": "auto",
    }


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DETECTOR_TOPICS": "x=nosuch"}, "unknown source 'nosuch'"),
        ({"DETECTOR_BATCH_SIZE": "many"}, "DETECTOR_BATCH_SIZE"),
        ({"DETECTOR_PREFILTER": "maybe"}, "expected true or false"),
        ({"DETECTOR_SECURITY_PROTOCOL": "TLS"}, "security_protocol"),
        ({"DETECTOR_SASL_PASSWORD_FILE": "/nonexistent/pw"}, "DETECTOR_SASL_PASSWORD_FILE.*No such file"),
        ({"DETECTOR_SSL_KEY_PASSWORD_FILE": "/"}, "DETECTOR_SSL_KEY_PASSWORD_FILE.*Is a directory"),
    ],
)
def test_bad_settings_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(env=env)


def test_sasl_scram_over_tls() -> None:
    cfg = load_config(
        env={
            "DETECTOR_SECURITY_PROTOCOL": "SASL_SSL",
            "DETECTOR_SASL_MECHANISM": "SCRAM-SHA-512",
            "DETECTOR_SASL_USERNAME": "u",
            "DETECTOR_SASL_PASSWORD": "p",
            "DETECTOR_SSL_CAFILE": "/etc/ca.pem",
        }
    )
    conf = cfg.kafka_client_config()
    assert conf["sasl.mechanism"] == "SCRAM-SHA-512" and conf["sasl.username"] == "u"
    assert conf["sasl.password"] == "p" and cfg.sasl_password.reveal() == "p" and str(cfg.sasl_password) == "***"
    assert conf["ssl.ca.location"] == "/etc/ca.pem" and conf["security.protocol"] == "SASL_SSL"


def test_unknown_file_key(tmp_path: Path) -> None:
    f = tmp_path / "w.toml"
    f.write_text('bootstrap = "x"\n')
    with pytest.raises(ConfigError, match="unknown setting 'bootstrap'"):
        load_config(f, env={})


def test_help_lists_every_setting() -> None:
    text = settings_help()
    for s in SETTINGS:
        assert s.env in text


def test_input_topic_names_and_its_inverse() -> None:
    for source in SOURCES:
        assert topic_source(input_topic(source)) == source
    assert input_topic("endgame") == "telemetry.endgame"
    assert topic_source("telemetry.nosuch") is None and topic_source("edr.endgame") is None


def test_every_setting_is_a_field_with_the_same_default() -> None:
    # One place: SETTINGS is read from WorkerConfig's fields, so a default built directly is the documented one.
    default = WorkerConfig()
    for s in SETTINGS:
        value = getattr(default, s.name)
        if s.secret:
            assert not value
        elif isinstance(value, dict | tuple):
            assert not value and s.default == ""
        else:
            assert value == s.default and type(value) is type(s.default), s.name


@pytest.mark.parametrize("name", ["PREVALENCE_HORIZON", "CAP_INTERVAL"])
def test_durations_are_checked_when_the_settings_load(name: str) -> None:
    with pytest.raises(ConfigError, match=f"DETECTOR_{name}.*not a duration"):
        load_config(env={f"DETECTOR_{name}": "30 days"})
