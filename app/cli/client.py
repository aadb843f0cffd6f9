"""The server's HTTP API as the CLI sees it: one call, every failure a Failure.

The session never reads the environment (``trust_env = False``): a proxy
named by HTTP_PROXY, HTTPS_PROXY or ALL_PROXY on a corporate host would
otherwise see every share sent over http:// in clear, loopback included, and
could answer in the server's place. A proxy is used only when ``--proxy``
names one. The same switch stops requests from reading REQUESTS_CA_BUNDLE and
~/.netrc, so TLS verification is passed with each request explicitly.

Before its first write (any method but GET) a client asks ``/v1/sys/health``
and refuses unless the reply names the service generate-share: Vault and
OpenBao listen on the same default port, and an ``init`` sent to one of them
would initialize it and hand its root token to this terminal.

The server's error sentences name its HTTP routes ("cancel it with DELETE
/v1/sys/generate-share/attempt"); the CLI says the command instead
("cancel it with 'generate-share cancel'"), so a holder is never told to type
a request they cannot send.

The lead's token is sent, in ``X-Vault-Token``, only with the requests that
need it (``token=`` of ``call``: a start, a cancel, and the status reads,
which show the nonce only with it): never to health, never with a share, so
an address that points elsewhere never sees it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import urlsplit

import requests

from app.cli.failure import UNREACHABLE, USAGE, Failure

__all__ = [
    "ADOPT",
    "HEALTH",
    "ADOPT_UPDATE",
    "ATTEMPT",
    "INIT",
    "SHARES",
    "UPDATE",
    "VERIFY",
    "Client",
    "Reply",
    "speak_cli",
]

TIMEOUT_SECONDS = 30

ATTEMPT = "/v1/sys/generate-share/attempt"
UPDATE = "/v1/sys/generate-share/update"
INIT = "/v1/sys/init"
SHARES = "/v1/sys/shares"
VERIFY = "/v1/sys/shares/verify"
ADOPT = "/v1/sys/adopt/attempt"
ADOPT_UPDATE = "/v1/sys/adopt/update"
HEALTH = "/v1/sys/health"
SERVICE = "generate-share"
TOKEN_HEADER = "X-Vault-Token"  # noqa: S105 (a header name)


# The routes the server's sentences name, and the command a CLI user types instead.
_COMMAND_FOR_ROUTE = {
    f"DELETE {ATTEMPT}": "'generate-share cancel'",
    f"PUT {ATTEMPT}": "'generate-share start'",
    f"DELETE {ADOPT}": "'generate-share adopt cancel'",
    f"PUT {ADOPT}": "'generate-share adopt start'",
    f"PUT {INIT}": "'generate-share init'",
    f"PUT {VERIFY}": "'generate-share verify'",
    f"GET {SHARES}": "'generate-share shares'",
}


# The request fields the server's sentences name, and the option (or words) a CLI user knows.
_OPTION_FOR_FIELD = {
    "secret_threshold": "--threshold",
    "secret_shares": "--shares",
    "share_limit": "--share-limit",
    "known_indices": "--known",
    "pgp_keys": "--pgp-keys",
    "pgp_key": "--pgp-key",
    "root_token": "root token",
}
_FIELD = re.compile(r"\b(" + "|".join(_OPTION_FOR_FIELD) + r")\b")


def speak_cli(message: str) -> str:
    """Return a server sentence in CLI terms: the command for each route, the option for each field."""
    for route, command in _COMMAND_FOR_ROUTE.items():
        message = message.replace(route, command)
    return _FIELD.sub(lambda m: _OPTION_FOR_FIELD[m.group(1)], message)


class _Fields(dict):
    """A JSON object of a reply: a missing field is one line of error, not a traceback."""

    def __missing__(self, key: str) -> NoReturn:
        """Refuse a reply that lacks a field this CLI needs."""
        raise Failure(f"the server's reply has no field {key!r}; is the address a generate-share server?")


@dataclass(frozen=True)
class Reply:
    """One successful HTTP reply: its status, raw text, and parsed JSON (or None)."""

    status: int
    text: str
    data: Any


class Client:
    """The server's HTTP API, with every failure turned into a Failure."""

    def __init__(self, address: str, ca_cert: str | None, proxy: str | None = None) -> None:
        """Remember the server's address, how to verify its TLS certificate, and the proxy if any."""
        self.address = address.rstrip("/")
        self.proxy = proxy
        self.verify: str | bool = ca_cert if ca_cert else True
        self.session = requests.Session()
        self.session.trust_env = False  # no proxy, CA bundle or netrc from the environment
        self.session.verify = self.verify
        self.session.proxies = {"http": proxy, "https": proxy} if proxy else {}
        self._health: dict | None = None

    def health(self) -> dict:
        """Return the server's health once it names generate-share, or raise Failure (exit 1)."""
        if self._health is not None:
            return self._health
        r = self._send("GET", HEALTH, None, None, {})
        try:
            data = r.json()
        except ValueError:
            data = None
        # Vault answers health with 501 (uninitialized) or 503 (sealed): the status says nothing.
        if not isinstance(data, dict) or data.get("service") != SERVICE:
            raise Failure(
                f"the server at {self.address} is not a generate-share server: its {HEALTH} does not "
                f"name the service {SERVICE} (a Vault or OpenBao server listens on the same port); "
                "nothing was sent to it. Check --address or GENERATE_SHARE_ADDR."
            )
        self._health = data
        return data

    def token_mode(self) -> bool:
        """Tell whether the server steers ceremonies with the lead's token (anything but 'open')."""
        # An unknown or missing value is taken as token mode: the stricter of the two.
        return self.health().get("ceremony_auth") != "open"

    def call(
        self,
        method: str,
        path: str,
        body: dict | None = None,
        params: dict[str, str] | None = None,
        *,
        token: str | None = None,
    ) -> Reply:
        """Send one request (a write, or anything with the token, only to a generate-share server).

        Return the reply, or raise Failure.
        """
        if method != "GET" or token is not None:
            self.health()
        headers = {TOKEN_HEADER: token} if token is not None else {}
        r = self._send(method, path, body, params, headers)
        data = None
        if r.content:
            try:
                data = r.json(object_hook=_Fields)
            except ValueError:
                data = None
        if (r.status_code >= 400 or not isinstance(data, dict)) and method == "GET":
            # A Vault or OpenBao on the port answers a read with its own "permission denied"
            # or 404, which would look like a token problem: say whom the CLI reached instead.
            self.health()
        if r.status_code >= 400:
            errors = data.get("errors") if isinstance(data, dict) else None
            if isinstance(errors, list) and errors and all(isinstance(e, str) for e in errors):
                raise Failure(*(speak_cli(" ".join(e.split())) for e in errors), status=r.status_code)
            raise Failure(
                f"the server at {self.address} answered HTTP {r.status_code} without an error list",
                status=r.status_code,
            )
        if r.content and not isinstance(data, dict):
            raise Failure(
                f"the server at {self.address} answered HTTP {r.status_code} with a reply that is not "
                "a JSON object; is it a generate-share server?"
            )
        return Reply(status=r.status_code, text=r.text, data=data)

    def _send(
        self, method: str, path: str, body: dict | None, params: dict[str, str] | None, headers: dict
    ) -> requests.Response:
        """Send one request and return the response, or raise Failure when it cannot be sent."""
        url = self.address + path
        try:
            return self.session.request(
                method,
                url,
                json=body,
                params=params,
                headers=headers,
                timeout=TIMEOUT_SECONDS,
                verify=self.verify,
            )
        except requests.exceptions.InvalidURL as exc:  # also catches a bad port or host
            raise Failure(
                f"the address {self.address} is not a valid URL ({_reason(exc)}); check --address or "
                "GENERATE_SHARE_ADDR",
                exit_code=USAGE,
            ) from None
        except requests.exceptions.ProxyError as exc:
            raise Failure(
                f"cannot reach the proxy {_without_credentials(self.proxy)}: {_reason(exc)}; check "
                "--proxy and that the proxy runs",
                exit_code=UNREACHABLE,
            ) from None
        except requests.RequestException as exc:  # refused, DNS, TLS, timeout, broken reply
            raise Failure(self._unreachable(exc), exit_code=UNREACHABLE) from None

    def _unreachable(self, exc: requests.RequestException) -> str:
        """Say in one sentence what was tried, what went wrong, and what to check."""
        where = f"cannot reach the server at {self.address}"
        reason = _reason(exc)
        check = "check --address (or GENERATE_SHARE_ADDR) and that the service runs ('make run')"
        if isinstance(exc, requests.exceptions.SSLError):
            if "WRONG_VERSION_NUMBER" in str(exc) or "wrong version number" in reason:
                # What OpenSSL says when the port answers in plain HTTP.
                plain = "http://" + self.address.removeprefix("https://")
                return (
                    f"{where}: the port answers in plain HTTP, not TLS; use {plain}, or the port "
                    "that serves HTTPS"
                )
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                return (
                    f"{where}: its TLS certificate could not be verified ({reason}); give the CA that "
                    "signed it with --ca-cert FILE (or GENERATE_SHARE_CACERT)"
                )
            return f"{where}: the TLS handshake failed ({reason}); check --address and --ca-cert"
        if isinstance(exc, requests.exceptions.Timeout):
            return f"{where}: no answer within {TIMEOUT_SECONDS} s; {check}"
        if isinstance(exc, requests.exceptions.ConnectionError) and self.address.startswith("http://"):
            if "RemoteDisconnected" in repr(exc) or "reset" in reason.lower() or "aborted" in reason.lower():
                # A TLS listener closes a plain-HTTP request without a reply.
                https = "https://" + self.address.removeprefix("http://")
                return (
                    f"{where}: the connection closed without a reply ({reason}); if the port serves "
                    f"HTTPS, use {https}"
                )
        return f"{where}: {reason}; {check}"

    def close(self) -> None:
        """Close the session's connections."""
        self.session.close()


def _without_credentials(url: str | None) -> str:
    """Return a proxy URL without any user name or password in it, for messages."""
    if not url:
        return "-"
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def _reason(exc: BaseException) -> str:
    """Return the root cause of a requests failure as one short line."""
    seen: set[int] = set()
    chain: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        chain.append(current)
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
        todo.extend(e for e in linked if isinstance(e, BaseException))
    for candidate in reversed(chain):
        module = type(candidate).__module__
        if isinstance(candidate, OSError) and not module.startswith(("urllib3", "requests")):
            text = candidate.strerror or str(candidate) or type(candidate).__name__
            return " ".join(str(text).split())
    text = str(chain[-1]) or type(chain[-1]).__name__
    return " ".join(text.split())
