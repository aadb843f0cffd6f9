"""Structured logs: one JSON object per line on standard error.

Log records carry methods, paths, statuses, x coordinates and reasons; never
a request body, a share or a key.

Every request writes one line, so formatting is on the request path: the
encoder is built once and the time stamp's seconds are reused within a second.
"""

import json
import logging
import sys
import time

__all__ = ["JsonFormatter", "configure"]

_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
# json.dumps with any option builds a new encoder on every call; this one is built once.
_ENCODER = json.JSONEncoder(default=str)


class JsonFormatter(logging.Formatter):
    """Format a record, and the fields passed in ``extra``, as one JSON line."""

    # (whole seconds, their text): one tuple, so a thread reads a consistent pair.
    _second: tuple[int, str] = (-1, "")

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as a JSON object on one line."""
        second = int(record.created)
        cached, text = self._second
        if second != cached:
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = (second, text)
        doc = {
            "time": f"{text}.{int(record.msecs):03d}Z",
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
