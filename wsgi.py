"""The WSGI entry point for gunicorn: ``gunicorn -c gunicorn.conf.py wsgi:app``.

gunicorn imports this module in the worker, the process that will hold the
shares: it turns core dumps off and makes itself non-dumpable first.
"""

import sys

from app import create_app
from app.errors import StartupError
from app.hygiene import harden_process

harden_process()
try:
    app = create_app()
except StartupError as exc:
    # One sentence, no traceback. Exit 3 is gunicorn's WORKER_BOOT_ERROR: the
    # master stops too, and deploy/generate-share.service does not restart.
    print(f"generate-share: refusing to start: {exc}", file=sys.stderr)
    sys.exit(3)
