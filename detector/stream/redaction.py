"""Keeping the worker's secrets out of its logs, in both of its processes (the Faust app's and the ingest's)."""

from __future__ import annotations

import logging
import traceback
from typing import Any

from detector.stream.config import WorkerConfig

# aiokafka logs every request and response at debug level by its repr, and a SaslAuthenticate request
# carries the PLAIN password in clear (b'\x00user\x00password') or a SCRAM proof.
_SASL_EXCHANGE = "SaslAuthenticate"
# Scrubbing a one- to three-character value out of every message would garble the logs and, by the
# gaps, point at the password; such a password is no protection anyway.
_MIN_SCRUBBED_LEN = 4


def _scrub_arg(arg: Any) -> Any:
    if type(arg).__name__.startswith(_SASL_EXCHANGE):
        return f"<{type(arg).__name__}: redacted>"
    return arg


def install_log_redaction(cfg: WorkerConfig) -> None:
    """Keep the worker's secrets out of every log record created from now on, whoever logs it.

    A record factory rather than a handler filter: Faust (mode) replaces the root logger's handlers when
    the worker starts, and filters on loggers do not see their children's records. librdkafka writes to
    stderr itself, past Python logging; it never prints sasl.password or ssl.key.password.
    """
    needles: list[str] = []
    for secret in (cfg.sasl_password, cfg.ssl_key_password):
        value = secret.reveal()
        if len(value) >= _MIN_SCRUBBED_LEN:
            # also as a str repr (in a logged dict) and a bytes repr (in a protocol struct) escape it
            for needle in (value, repr(value)[1:-1], repr(value.encode())[2:-1]):
                if needle not in needles:
                    needles.append(needle)
    previous = logging.getLogRecordFactory()

    def scrub(text: str) -> str:
        for needle in needles:
            text = text.replace(needle, "***")
        return text

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if isinstance(record.args, tuple):
            record.args = tuple(_scrub_arg(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _scrub_arg(v) for k, v in record.args.items()}
        if not needles:
            return record
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: logging itself reports it, without our help
            return record
        if any(n in message for n in needles):
            record.msg, record.args = scrub(message), ()
        if record.exc_info and record.exc_info[0] is not None:
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            if any(n in text for n in needles):
                # Formatters use a record's exc_text as it is when set, instead of formatting exc_info.
                record.exc_text = scrub(text)
        return record

    logging.setLogRecordFactory(factory)
