"""Credentials (SASL password, TLS key password) never show: not in a config's repr, `--print-config`, error
messages, logs or metrics, while both Kafka clients still get them, from the environment, TOML or a file.

The worker tests run `detector worker` against a fake broker that accepts a SASL PLAIN login and refuses
it, so the clients really send the password (the broker records it) and log their whole exchange at
debug level; the test broker of deploy/kafka is PLAINTEXT and would refuse SASL before any password.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import tomllib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from detector.cli.main import main
from detector.cli.stream_cmds import format_config
from detector.stream.config import (
    MAX_SECRET_FILE_BYTES,
    ConfigError,
    Secret,
    WorkerConfig,
    effective_settings,
    load_config,
    settings_help,
)

REPO = Path(__file__).resolve().parents[1]


def canary() -> str:
    return f"CANARY-{uuid.uuid4().hex}"


def sasl_env(**extra: str) -> dict[str, str]:
    return {"DETECTOR_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "DETECTOR_SASL_USERNAME": "detector", **extra}


# --- the Secret type -------------------------------------------------------------------------------


def test_secret_redacts_itself_everywhere_but_reveal() -> None:
    value = canary()
    s = Secret(value)
    shown = [repr(s), str(s), f"{s}", "%s" % s, "%r" % s, format(s), repr([s]), repr({"k": s})]  # noqa: UP031
    assert all(value not in text for text in shown), shown
    assert str(s) == "***" and repr(s) == "Secret('***')"
    assert s.reveal() == value
    # Not a str subclass: nothing that works on strings can take the value out by accident.
    with pytest.raises(TypeError):
        json.dumps(s)
    with pytest.raises(TypeError):
        "".join([s])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        f"{s:>80}"  # a format spec would need str's own __format__
    assert s == Secret(value) and s != Secret("other") and hash(s) == hash(Secret(value))
    assert not Secret() and str(Secret()) == "" and repr(Secret()) == "Secret('')"


# --- configuration from each source ---------------------------------------------------------------


def _from_env(tmp_path: Path, value: str) -> WorkerConfig:
    return load_config(env=sasl_env(DETECTOR_SASL_PASSWORD=value))


def _from_file(tmp_path: Path, value: str) -> WorkerConfig:
    f = tmp_path / "sasl-password"
    f.write_text(value + "\n")  # as `echo` or `kubectl create secret --from-file` of an edited file leaves it
    return load_config(env=sasl_env(DETECTOR_SASL_PASSWORD_FILE=str(f)))


def _from_toml(tmp_path: Path, value: str) -> WorkerConfig:
    f = tmp_path / "worker.toml"
    f.write_text(f'security_protocol = "SASL_SSL"\nsasl_password = "{value}"\n')
    return load_config(f, env={})


def _from_toml_file_key(tmp_path: Path, value: str) -> WorkerConfig:
    secret = tmp_path / "pw"
    secret.write_text(value)
    f = tmp_path / "worker.toml"
    f.write_text(f'security_protocol = "SASL_SSL"\nsasl_password_file = "{secret}"\n')
    return load_config(f, env={})


SOURCES: dict[str, Callable[[Path, str], WorkerConfig]] = {
    "env": _from_env,
    "file": _from_file,
    "toml": _from_toml,
    "toml-file": _from_toml_file_key,
}


@pytest.mark.parametrize("source", list(SOURCES))
def test_password_reaches_both_clients_and_no_display(tmp_path: Path, source: str) -> None:
    from detector.stream.app import faust_credentials

    value = canary()
    cfg = SOURCES[source](tmp_path, value)
    # Both Kafka clients get the password itself (for the file: without its trailing newline).
    assert cfg.kafka_client_config()["sasl.password"] == value
    assert faust_credentials(cfg).password == value
    # ... and no way of showing the configuration shows it.
    startup_line = " ".join(f"{k}={v}" for k, v in effective_settings(cfg).items())
    shown = [repr(cfg), str(cfg), f"{cfg}", repr(dataclasses.asdict(cfg)), format_config(cfg), startup_line]
    for text in shown:
        assert value not in text
    assert "sasl_password=***" in startup_line
    assert "# sasl_password = (set, not shown)" in format_config(cfg)
    assert repr(faust_credentials(cfg)).count(value) == 0  # Faust's own repr leaves it out too


def test_ssl_key_password_from_file_unlocks_the_key(tmp_path: Path) -> None:
    """The TLS key password reaches librdkafka's settings and really decrypts the key for aiokafka."""
    from detector.stream.app import faust_credentials

    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make an encrypted key")
    value = canary()
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
    files = ["-keyout", str(key), "-out", str(cert), "-passout", f"pass:{value}"]
    subprocess.run(
        ["openssl", "req", "-x509", *ec, "-days", "1", "-subj", "/CN=detector", *files],
        check=True,
        capture_output=True,
    )
    assert b"ENCRYPTED" in key.read_bytes()
    pw = tmp_path / "key-password"
    pw.write_text(value + "\r\n")
    env = {
        "DETECTOR_SECURITY_PROTOCOL": "SSL",
        "DETECTOR_SSL_CERTFILE": str(cert),
        "DETECTOR_SSL_KEYFILE": str(key),
        "DETECTOR_SSL_KEY_PASSWORD_FILE": str(pw),
    }
    cfg = load_config(env=env)
    assert cfg.kafka_client_config()["ssl.key.password"] == value
    assert value not in repr(cfg) and value not in format_config(cfg)
    assert isinstance(faust_credentials(cfg).context, ssl.SSLContext)  # load_cert_chain took the password
    wrong = load_config(env={**env, "DETECTOR_SSL_KEY_PASSWORD_FILE": "", "DETECTOR_SSL_KEY_PASSWORD": "wrong-pw"})
    with pytest.raises(ssl.SSLError):
        faust_credentials(wrong)


# --- reading password files -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"s3cret\n", "s3cret"),
        (b"s3cret\r\n", "s3cret"),
        (b"s3cret", "s3cret"),
        (b"Endpoint=sb://x/;SharedAccessKey=a b=\n\n", "Endpoint=sb://x/;SharedAccessKey=a b="),
        (" pä'ss \n".encode(), " pä'ss "),  # only line ends are stripped: spaces may be part of a password
    ],
)
def test_password_file_content(tmp_path: Path, content: bytes, expected: str) -> None:
    f = tmp_path / "pw"
    f.write_bytes(content)
    assert load_config(env=sasl_env(DETECTOR_SASL_PASSWORD_FILE=str(f))).sasl_password.reveal() == expected


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read .*/pw: No such file or directory"),
        ("directory", "cannot read .*/pw: Is a directory"),
        (b"", "pw is empty"),
        (b"\n", "pw is empty"),
        (b"CANARY\xff\xfe", "pw is not UTF-8 text"),
        (b"CANARY" * MAX_SECRET_FILE_BYTES, "pw is larger than 64 KiB"),
    ],
    ids=["missing", "directory", "empty", "only-newline", "not-utf8", "too-large"],
)
def test_unusable_password_file_is_a_named_error(tmp_path: Path, content: bytes | str | None, message: str) -> None:
    path = tmp_path / "pw"
    if content == "directory":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    with pytest.raises(ConfigError, match=message) as err:
        load_config(env=sasl_env(DETECTOR_SASL_PASSWORD_FILE=str(path)))
    text = str(err.value)
    assert text.startswith("sasl_password_file (DETECTOR_SASL_PASSWORD_FILE): ")
    # Nothing of the file's content, not even the one byte that did not decode.
    assert "CANARY" not in text and "xff" not in text


def test_value_and_file_together_is_an_error(tmp_path: Path) -> None:
    value = canary()
    f = tmp_path / "pw"
    f.write_text(value)
    with pytest.raises(
        ConfigError, match=r"DETECTOR_SASL_PASSWORD.* and .*DETECTOR_SASL_PASSWORD_FILE.*both set"
    ) as err:
        load_config(env=sasl_env(DETECTOR_SASL_PASSWORD=value, DETECTOR_SASL_PASSWORD_FILE=str(f)))
    assert value not in str(err.value)
    # Also across sources: a value in the config file and a file in the environment.
    toml = tmp_path / "w.toml"
    toml.write_text(f'sasl_password = "{value}"\n')
    with pytest.raises(ConfigError, match="both set"):
        load_config(toml, env={"DETECTOR_SASL_PASSWORD_FILE": str(f)})
    # An empty value does not count as given: the environment can override a file's value away.
    assert load_config(toml, env={"DETECTOR_SASL_PASSWORD": "", "DETECTOR_SASL_PASSWORD_FILE": str(f)}).sasl_password


# --- error messages about a bad secret ------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("sasl_password = 90210\n", r"sasl_password \(DETECTOR_SASL_PASSWORD\): expected a string"),
        ('sasl_password = ["{c}", "x"]\n', "sasl_password .*expected a string"),
        # tomllib quotes an illegal character, a piece of the password
        ('log_level = "info"\nsasl_password = "{c}\x7f"\n', "line 2: invalid TOML value for sasl_password"),
        ('ssl_key_password = "{c}\n', "line 1: invalid TOML value for ssl_key_password"),
    ],
    ids=["integer", "array", "illegal-character", "unterminated"],
)
def test_config_file_errors_do_not_quote_a_secret(tmp_path: Path, toml: str, message: str) -> None:
    value = canary()
    f = tmp_path / "w.toml"
    f.write_text(toml.format(c=value))
    with pytest.raises(ConfigError, match=message) as err:
        load_config(f, env={})
    assert value not in str(err.value) and "90210" not in str(err.value) and "x7f" not in str(err.value)


def test_config_file_not_utf8_does_not_quote_bytes(tmp_path: Path) -> None:
    f = tmp_path / "w.toml"
    f.write_bytes(b'sasl_password = "CANARY\xe9\xff"\n')
    with pytest.raises(ConfigError, match="not UTF-8 text") as err:
        load_config(f, env={})
    assert "CANARY" not in str(err.value) and "xff" not in str(err.value)


def test_other_toml_errors_keep_the_parsers_detail(tmp_path: Path) -> None:
    f = tmp_path / "w.toml"
    f.write_text('log_level = "info\x7f"\n')
    with pytest.raises(ConfigError, match=r"Illegal character '\\x7f' \(at line 1"):
        load_config(f, env={})


def test_help_lists_the_file_settings_and_no_secret_default() -> None:
    text = settings_help()
    for env in ("DETECTOR_SASL_PASSWORD_FILE", "DETECTOR_SSL_KEY_PASSWORD", "DETECTOR_SSL_KEY_PASSWORD_FILE"):
        assert env in text
    line = next(ln for ln in text.splitlines() if ln.split()[0] == "DETECTOR_SASL_PASSWORD")
    assert line.endswith("[default: -]")


# --- `detector worker --print-config` -------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for key in list(os.environ):
        if key.startswith("DETECTOR_"):
            monkeypatch.delenv(key)
    return monkeypatch


def test_print_config_redacts_and_loads_back(
    tmp_path: Path, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    value = canary()
    for key, v in sasl_env(DETECTOR_SASL_PASSWORD=value, DETECTOR_TOPICS="a=auto,b=endgame").items():
        clean_env.setenv(key, v)
    assert main(["worker", "--print-config", "--http-port", "8123"]) == 0
    out, err = capsys.readouterr()
    assert value not in out + err
    assert "# sasl_password = (set, not shown)" in out.splitlines()
    # The output is a config file: fed back, it gives the same settings, the secret excepted (unset,
    # rather than '***', so a reused dump fails to log in instead of sending a wrong password).
    f = tmp_path / "dump.toml"
    f.write_text(out)
    assert "sasl_password" not in tomllib.loads(out)
    again = load_config(f, env={})
    assert again == dataclasses.replace(
        load_config(env=dict(os.environ), overrides={"http_port": 8123}), sasl_password=Secret()
    )
    assert again.http_port == 8123 and again.topics == {"a": "auto", "b": "endgame"}


def test_print_config_reports_a_bad_password_file_without_starting(
    tmp_path: Path, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("DETECTOR_SASL_PASSWORD_FILE", str(tmp_path / "nope"))
    assert main(["worker", "--print-config"]) == 2
    assert "detector: error: sasl_password_file (DETECTOR_SASL_PASSWORD_FILE): cannot read" in capsys.readouterr().err


# --- logs and metrics -----------------------------------------------------------------------------


@pytest.fixture
def restore_record_factory() -> Iterator[None]:
    factory = logging.getLogRecordFactory()
    yield
    logging.setLogRecordFactory(factory)


def test_log_redaction(restore_record_factory: None, caplog: pytest.LogCaptureFixture) -> None:
    from aiokafka.protocol.admin import SaslAuthenticateRequest_v1

    from detector.stream.redaction import install_log_redaction

    value = "pä'ss\\" + uuid.uuid4().hex  # escaped differently in a str's repr, in a bytes' repr
    install_log_redaction(load_config(env=sasl_env(DETECTOR_SASL_PASSWORD=value)))
    request = SaslAuthenticateRequest_v1(b"\x00detector\x00" + value.encode())
    escaped = repr(value.encode())[2:-1]
    assert escaped in repr(request)  # what aiokafka would log at debug level
    caplog.set_level(logging.DEBUG)
    logging.getLogger("aiokafka.conn").debug("Request to %s:%d %d: %s", "h", 9092, 3, request)
    logging.getLogger("some.library").warning("connecting with %s", {"sasl.password": value})
    logging.getLogger("some.library").debug("token %r", value.encode())
    try:
        raise RuntimeError(f"login refused for {value}")
    except RuntimeError:
        logging.getLogger("other").exception("failed")
    text = caplog.text
    assert "<SaslAuthenticateRequest_v1: redacted>" in text
    assert """connecting with {'sasl.password': "***"}""" in text
    assert 'token b"***"' in text
    assert "login refused for ***" in text
    assert value not in text and escaped not in text and repr(value)[1:-1] not in text


def test_short_password_is_not_scrubbed_from_every_message(
    restore_record_factory: None, caplog: pytest.LogCaptureFixture
) -> None:
    from detector.stream.redaction import install_log_redaction

    install_log_redaction(load_config(env=sasl_env(DETECTOR_SASL_PASSWORD="a")))
    caplog.set_level(logging.INFO)
    logging.getLogger("x").info("a normal message")
    assert "a normal message" in caplog.text


def test_metrics_do_not_carry_the_password() -> None:
    from detector.metrics import Metrics
    from detector.rules.model import load_rules
    from detector.stream.app import create_app

    value = canary()
    cfg = load_config(env=sasl_env(DETECTOR_SASL_PASSWORD=value))
    metrics = Metrics()
    create_app(cfg, load_rules(cfg.rules), metrics)
    exposition = metrics.exposition()
    assert b"detector_build_info" in exposition and value.encode() not in exposition


# --- the worker, end to end -----------------------------------------------------------------------


class FakeSaslBroker:
    """Enough of the Kafka protocol for a SASL PLAIN login, which it refuses after reading it.

    ApiVersions (answered in v0 form; a newer request gets UNSUPPORTED_VERSION, on which clients retry
    with v0, as with a real broker), SaslHandshake v0-1 offering PLAIN, SaslAuthenticate v0-1 answered
    with SASL_AUTHENTICATION_FAILED. Everything received is kept, to check what the clients sent.
    """

    APIS = ((18, 0, 0), (17, 0, 1), (36, 0, 1), (3, 0, 1))

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self._received = bytearray()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def received(self) -> bytes:
        with self._lock:
            return bytes(self._received)

    def close(self) -> None:
        self.sock.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _read(conn: socket.socket, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = conn.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        return buf

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                while True:
                    (size,) = struct.unpack(">i", self._read(conn, 4))
                    request = self._read(conn, size)
                    with self._lock:
                        self._received += request
                    api_key, version, correlation_id = struct.unpack(">hhi", request[:8])
                    if api_key == 18:
                        body = struct.pack(">hi", 0 if version == 0 else 35, len(self.APIS))
                        body += b"".join(struct.pack(">hhh", *api) for api in self.APIS)
                    elif api_key == 17:
                        body = struct.pack(">hih", 0, 1, 5) + b"PLAIN"
                    elif api_key == 36:
                        error = b"Authentication failed: Invalid username or password"
                        body = struct.pack(">hh", 58, len(error)) + error + struct.pack(">i", 0)
                        body += struct.pack(">q", 0) if version >= 1 else b""
                    else:
                        return
                    response = struct.pack(">i", correlation_id) + body
                    conn.sendall(struct.pack(">i", len(response)) + response)
                    if api_key == 36:
                        return  # a broker closes the connection after a failed login
            except (ConnectionError, OSError):
                return


@pytest.fixture
def broker() -> Iterator[FakeSaslBroker]:
    b = FakeSaslBroker()
    yield b
    b.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_worker(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("DETECTOR_")}
    full = {
        **base,
        "DETECTOR_LOG_LEVEL": "debug",
        "DETECTOR_HTTP_PORT": str(_free_port()),
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(REPO),
        **env,
    }
    # cwd: Faust writes its data directory there.
    return subprocess.Popen(
        [sys.executable, "-m", "detector.cli.main", "worker", *args],
        env=full,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _finish(proc: subprocess.Popen[bytes], timeout: float) -> tuple[int, str]:
    """The exit status (negative: stopped here) and stdout + stderr of a worker."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    return proc.returncode, (out + err).decode(errors="replace")


def test_worker_faust_login_logs_no_password(tmp_path: Path, broker: FakeSaslBroker) -> None:
    """aiokafka (under Faust) gets the password from the file and logs its SASL exchange, redacted."""
    value = canary()
    pw = tmp_path / "sasl-password"
    pw.write_text(value + "\n")
    env = sasl_env(DETECTOR_BOOTSTRAP_SERVERS=broker.bootstrap, DETECTOR_SASL_PASSWORD_FILE=str(pw))
    # Without topic creation the first client to log in is Faust's producer; the refusal stops the worker.
    status, output = _finish(_start_worker(tmp_path, env, "--no-create-topics"), timeout=60)
    assert status > 0, output
    assert b"\x00detector\x00" + value.encode() in broker.received(), "the client never sent the file's password"
    assert "Authentication failed" in output and "<SaslAuthenticateRequest_v1: redacted>" in output, output
    assert "sasl_password=*** sasl_password_file=" in output  # the settings line at start
    assert value not in output


def test_worker_librdkafka_login_logs_no_password(tmp_path: Path, broker: FakeSaslBroker) -> None:
    """confluent-kafka (topic creation at start) gets the password from the environment; nothing prints it."""
    value = canary()
    env = sasl_env(DETECTOR_BOOTSTRAP_SERVERS=broker.bootstrap, DETECTOR_SASL_PASSWORD=value)
    proc = _start_worker(tmp_path, env)
    deadline = time.monotonic() + 30
    while value.encode() not in broker.received() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(2)  # a few refused logins and their error reports
    _, output = _finish(proc, timeout=0.1)
    assert b"\x00detector\x00" + value.encode() in broker.received(), output
    assert "SASL authentication error" in output, output
    assert value not in output


@pytest.mark.kafka
def test_worker_against_plaintext_broker_logs_no_password(tmp_path: Path, kafka_bootstrap: str) -> None:
    """The real broker speaks no SASL: the handshake fails before any password is sent, and nothing shows it."""
    value = canary()
    config = tmp_path / "worker.toml"
    config.write_text(f'security_protocol = "SASL_PLAINTEXT"\nsasl_username = "detector"\nsasl_password = "{value}"\n')
    env = {"DETECTOR_BOOTSTRAP_SERVERS": kafka_bootstrap}
    status, output = _finish(_start_worker(tmp_path, env, "--config", str(config), "--no-create-topics"), timeout=60)
    assert status > 0 and "IllegalSaslStateError" in output, output
    assert value not in output
