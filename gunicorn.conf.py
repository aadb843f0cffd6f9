"""gunicorn settings: one process, many threads.

The share generation attempt lives in one process's memory, so exactly one
worker may serve a data folder; the service also locks the folder, so a
second process fails to start. Scale with threads.
"""

import os
import sys

bind = os.environ.get("GENERATE_SHARE_BIND", "127.0.0.1:8200")
workers = 1
worker_class = "gthread"
threads = int(os.environ.get("GENERATE_SHARE_THREADS", "8"))
# Load the app in the worker, not the master: the worker holds the data
# folder's lock, and a second worker on the same folder must fail loudly.
preload_app = False
# Restarting the worker would silently cancel a ceremony in progress.
max_requests = 0
timeout = 60
graceful_timeout = 30
accesslog = None
errorlog = "-"
loglevel = os.environ.get("GENERATE_SHARE_LOG_LEVEL", "info").lower()
# gunicorn 27's control socket is shared per user; the service needs none.
control_socket_disable = True


def on_starting(server):
    """Refuse more than one worker: a second process could not see the attempt."""
    if server.cfg.workers != 1:
        print(
            f"generate-share: refusing to start with {server.cfg.workers} workers; the "
            "attempt lives in one process's memory, so run exactly one worker and "
            "scale with GENERATE_SHARE_THREADS",
            file=sys.stderr,
        )
        sys.exit(4)
