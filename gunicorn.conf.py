"""gunicorn settings: one process, many threads.

The share generation attempt lives in one process's memory, so exactly one
worker may serve a data folder; the service also locks the folder, so a
second process fails to start. Scale with threads.
"""

import os
import sys

bind = os.environ.get("GENERATE_SHARE_BIND", "127.0.0.1:8200")
workers = 1
# gthread, except that a thread gets a connection only once its request has
# fully arrived: slow or idle clients wait in the main loop, not in a thread.
# A request must arrive whole within GENERATE_SHARE_REQUEST_DEADLINE seconds
# (default 10; app/worker.py reads it), or it is answered 408 and closed.
worker_class = "app.worker.BufferingWorker"
threads = int(os.environ.get("GENERATE_SHARE_THREADS", "8"))
# Connections the worker holds at once, arriving, served or kept alive; past
# this it stops accepting until one closes. Each arriving request holds at
# most 32 KiB of head plus the body limit in memory.
worker_connections = 1000
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
