"""The best the service could be: bare Flask apps under the same gunicorn configuration.

Both answer ``GET /v1/sys/generate-share/attempt`` with the same JSON as the
service does on an initialized service with no attempt in progress
(threshold 3), and nothing else.

- ``bare_app:app`` does nothing more: no hooks, no logging, no lock, no schema.
- ``bare_app:duties`` also does, as cheaply as one view can, what the service
  must do for every request: name it (X-Request-Id, kept when plain, made
  otherwise), add the three headers every reply carries, and write the JSON
  access log line through ``logging`` with the service's own formatter. It is
  the ceiling for any implementation of the service's behaviour.
"""

import json
import logging
import re
import time
import uuid

from flask import Flask, request

from app import logs

STATUS = {
    "started": False,
    "nonce": "",
    "progress": 0,
    "required": 3,
    "pgp_fingerprint": "",
    "complete": False,
    "key": "",
    "key_base64": "",
}
ATTEMPT = "/v1/sys/generate-share/attempt"

app = Flask(__name__)


@app.get(ATTEMPT)
def read_attempt():
    """Return the status of no attempt, as the service would."""
    return app.response_class(json.dumps(STATUS), mimetype="application/json")


duties = Flask(f"{__name__}.duties")
access_log = logging.getLogger("app.access")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


@duties.get(ATTEMPT)
def read_attempt_with_duties():
    """Return the same status with the service's per-request duties done inline."""
    started = time.perf_counter()
    environ = request.environ
    incoming = environ.get("HTTP_X_REQUEST_ID", "")
    request_id = incoming if incoming and _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
    response = duties.response_class(json.dumps(STATUS), mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Request-Id"] = request_id
    access_log.info(
        "request",
        extra={
            "method": environ["REQUEST_METHOD"],
            "path": request.path,
            "status": response.status_code,
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            "request_id": request_id,
            "client": environ.get("REMOTE_ADDR") or "",
        },
    )
    return response


logs.configure("INFO")  # the service's handler and formatter, on standard error
