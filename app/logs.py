"""Structured logs: one JSON object per line on standard error.

Log records carry methods, paths, statuses, x coordinates and reasons; never
a request body, a share or a key.

Every request writes one line, so formatting is on the request path: the
encoder is built once and the time stamp's seconds are reused within a second.
``access`` writes the request's line straight to the service's own handler,
the same JSON and under the same lock, without building a ``LogRecord``; where
anything else listens (a test's handler, a filter), it logs as usual.
"""

import json
import logging
import sys
import time

__all__ = ["JsonFormatter", "MAX_LOGGED_PATH", "access", "configure"]

#: The longest path an access line names: a client chooses it (the app's lines and the worker's alike).
MAX_LOGGED_PATH = 200

_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
# json.dumps with any option builds a new encoder on every call; this one is built once.
_ENCODER = json.JSONEncoder(default=str)


# (whole seconds, their text): one tuple, so a thread reads a consistent pair.
_second: tuple[int, str] = (-1, "")


def _stamp(created: float, msecs: float) -> str:
    """Return the time stamp of a line made at created (seconds since the epoch)."""
    global _second
    second = int(created)
    cached, text = _second
    if second != cached:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _second = (second, text)
    return f"{text}.{int(msecs):03d}Z"


class JsonFormatter(logging.Formatter):
    """Format a record, and the fields passed in ``extra``, as one JSON line."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as a JSON object on one line."""
        doc = {
            "time": _stamp(record.created, record.msecs),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD:
                doc[key] = value
        if record.exc_info:
            doc["traceback"] = self.formatException(record.exc_info)
        return _ENCODER.encode(doc)


def configure(level: str) -> None:
    """Send the service's logs ("app.*") to standard error as JSON lines."""
    logger = logging.getLogger("app")
    logger.setLevel(level)
    if not any(getattr(h, "_generate_share", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler._generate_share = True
        logger.addHandler(handler)
    logger.propagate = False


def access(logger: logging.Logger, message: str, fields: dict) -> None:
    """Write one INFO line with fields to logger, straight to the service's handler when it alone listens."""
    handler = _sole_handler(logger)
    if handler is None:
        # makeRecord and handle, not info(): info() would walk the stack to
        # find the caller, which this line does not need.
        record = logger.makeRecord(logger.name, logging.INFO, __file__, 0, message, None, None, extra=fields)
        logger.handle(record)
        return
    # What makeRecord, the formatter and StreamHandler.emit would do, minus the
    # LogRecord: about a quarter of a request's time in the service's process.
    created = time.time()
    doc = {
        "time": _stamp(created, (created - int(created)) * 1000),
        "level": "INFO",
        "logger": logger.name,
        "message": message,
        **fields,
    }
    line = _ENCODER.encode(doc) + handler.terminator
    with handler.lock:  # the handler's own lock: lines from every thread stay whole and in order
        try:
            handler.stream.write(line)
            handler.stream.flush()
        except Exception:
            handler.handleError(
                logger.makeRecord(logger.name, logging.INFO, __file__, 0, message, None, None)
            )


def _sole_handler(logger: logging.Logger) -> logging.StreamHandler | None:
    """Return the service's handler if it is the only thing logger's lines reach, unfiltered; else None."""
    if logger.filters or logger.handlers or not logger.propagate or logger.disabled:
        return None
    parent = logger.parent
    if parent is None or parent.filters or parent.propagate or len(parent.handlers) != 1:
        return None
    (handler,) = parent.handlers
    if not getattr(handler, "_generate_share", False) or handler.filters or handler.level > logging.INFO:
        return None
    return handler
