"""gunicorn settings: one process, many threads.

The share generation attempt lives in one process's memory, so exactly one
worker may serve a data folder; the service also locks the folder, so a
second process fails to start. Scale with threads.
"""

import ipaddress
import logging
import socket
import ssl
import sys

# Not "config": a module-level name gunicorn knows is taken as its setting.
from app.config import SettingError, from_environ

#: The exit status of a start this file refuses (gunicorn's own APP_LOAD_ERROR);
#: a worker that cannot open the data folder makes the master exit 3
#: (WORKER_BOOT_ERROR). deploy/generate-share.service does not restart on either.
REFUSED = 4


def _refuse(sentence: str) -> None:
    """Print why the service will not start, and exit without a traceback."""
    print(f"generate-share: refusing to start: {sentence}", file=sys.stderr)
    sys.exit(REFUSED)


# Every GENERATE_SHARE_* setting is checked here, in the master, before
# anything listens: a bad one is refused in one sentence (app/config.py).
try:
    settings = from_environ()
except SettingError as exc:
    _refuse(str(exc))

bind = settings.bind
workers = 1
# app/worker.py: the main loop reads each request whole and writes each reply;
# a thread only runs a request already in memory. A request must arrive whole
# within GENERATE_SHARE_REQUEST_DEADLINE seconds (default 10), or it is
# answered 408; one address holds at most GENERATE_SHARE_CONNECTIONS_PER_ADDRESS
# connections (default 256). Both come from app/config.py.
worker_class = "app.worker.BufferingWorker"
threads = settings.threads
# Connections the worker holds at once, arriving, served or kept alive (fewer
# if the descriptor limit leaves no room for them; the startup line says how
# many); past this it closes an idle one or stops accepting until one closes.
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
loglevel = settings.log_level.lower()
# gunicorn 27's control socket is shared per user; the service needs none.
control_socket_disable = True


def _tls_files() -> tuple[str, str] | None:
    """Return the certificate and key files for native TLS, or None; refuse a pair that cannot be read."""
    cert, key = settings.tls_cert_file, settings.tls_key_file
    if not cert:
        return None  # app/config.py refused half a pair
    for name, path in (("GENERATE_SHARE_TLS_CERT_FILE", cert), ("GENERATE_SHARE_TLS_KEY_FILE", key)):
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            _refuse(f"{name} names {path}, which cannot be read ({exc.strerror})")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (ssl.SSLError, ValueError) as exc:
        # The reason only: a key file's contents never reach a message.
        reason = getattr(exc, "reason", None) or type(exc).__name__
        _refuse(
            f"GENERATE_SHARE_TLS_CERT_FILE ({cert}) and GENERATE_SHARE_TLS_KEY_FILE ({key}) must be a "
            f"PEM certificate chain and its unencrypted private key ({reason})"
        )
    return cert, key


# Native TLS: gunicorn serves HTTPS itself, and app/worker.py still reads each
# request (handshake included) in its main loop before a thread sees it.
_tls = _tls_files()
if _tls:
    certfile, keyfile = _tls


def on_starting(server):
    """Refuse more than one worker, or a data folder another process serves, before any worker."""
    if server.cfg.workers != 1:
        print(
            f"generate-share: refusing to start with {server.cfg.workers} workers; the "
            "attempt lives in one process's memory, so run exactly one worker and "
            "scale with GENERATE_SHARE_THREADS",
            file=sys.stderr,
        )
        sys.exit(REFUSED)
    # A second `make run` on the same folder: one line here, before a worker boots and
    # gunicorn reports its exit (the worker still takes the lock for good, so a race
    # between two starts is caught too).
    from app.errors import StartupError
    from app.folder import refuse_if_served

    try:
        refuse_if_served(settings.data_dir)
    except StartupError as exc:
        _refuse(str(exc))


def post_worker_init(worker):
    """Log one line at start: where, which folder, initialized or not, mode, TLS; warn on bare HTTP."""
    log = logging.getLogger("app.startup")
    app = worker.wsgi
    # A bare WSGI app (bench/bare_app.py) has neither: the line then says so.
    store = getattr(app, "extensions", {}).get("generate_share_store")
    ceremony_auth = settings.ceremony_auth if store else None  # the worker read the same settings
    tls = bool(worker.cfg.is_ssl)
    addresses = [_address(s.sock) for s in worker.sockets]
    # app/worker.py sizes its connections from the descriptor limit at start.
    connections = getattr(worker, "connection_limit", worker.cfg.worker_connections)
    descriptors = getattr(worker, "descriptor_limit", None)
    log.info(
        "generate-share started: listening on %s, data folder %s, %s, ceremony auth %s, TLS %s, "
        "at most %s connections (descriptor limit %s, %s per address)",
        ", ".join(addresses),
        store.path if store else "?",
        "initialized" if store and store.state is not None else "not initialized",
        ceremony_auth,
        "on" if tls else "off",
        connections,
        descriptors,
        getattr(worker, "per_address_limit", None),
        extra={
            "connections": connections,
            "descriptor_limit": descriptors,
            "addresses": addresses,
            "data_dir": str(store.path) if store else None,
            "initialized": bool(store and store.state is not None),
            "ceremony_auth": ceremony_auth,
            "tls": tls,
        },
    )
    exposed = [a for s, a in zip(worker.sockets, addresses, strict=True) if not _local(s.sock)]
    if exposed and not tls:
        log.warning(
            "listening beyond loopback (%s) without TLS: shares, pads and the operator token would "
            "cross the network in clear; set GENERATE_SHARE_TLS_CERT_FILE and "
            "GENERATE_SHARE_TLS_KEY_FILE, or bind 127.0.0.1 behind a TLS reverse proxy",
            ", ".join(exposed),
        )


def _address(sock) -> str:
    """Return a listener's address as a URL-ish string (a path for a Unix socket)."""
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return f"unix:{name}"
    host = f"[{name[0]}]" if sock.family == socket.AF_INET6 else name[0]
    return f"{host}:{name[1]}"


def _local(sock) -> bool:
    """Tell whether a listener is reachable only from this host (loopback or a Unix socket)."""
    if sock.family == socket.AF_UNIX:
        return True
    return ipaddress.ip_address(sock.getsockname()[0].split("%")[0]).is_loopback
