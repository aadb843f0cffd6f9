"""Structured logs: one JSON object per line on standard error.

Log records carry methods, paths, statuses, x coordinates and reasons; never
a request body, a share or a key.
"""

import json
import logging
import sys
import time

__all__ = ["JsonFormatter", "configure"]

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Format a record, and the fields passed in ``extra``, as one JSON line."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as a JSON object on one line."""
        doc = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        doc.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            doc["traceback"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


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
