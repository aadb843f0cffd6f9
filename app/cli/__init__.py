"""generate-share: the operator's command line for a whole key ceremony.

Like ``vault operator generate-root``, it walks the key holders through an
attempt (start, status, update, cancel), initializes the service or adopts an
existing Vault share set (``adopt``), decodes an encrypted share with the
holder's own gpg, lets a holder check alone that their share is still good
(``verify``), and shows the registry with its custody column. It talks to the
server over HTTP only, directly or through ``--proxy`` (never a proxy from the
environment). Exit codes: 0 ok, 1 refused by the server (or by gpg, or a share
that ``verify`` finds not valid), 2 usage, 3 cannot reach the server.

Against a server in token mode the lead's root token (``GENERATE_SHARE_TOKEN``
or ``--token-file``) goes with start and cancel only; holders pin the attempt
with ``update --nonce`` (or confirm it at a terminal); the new share of an
attempt without a PGP key comes back masked and ``decode --otp`` unmasks it.
Every write, ``init`` first, goes only to a server whose health names the
service generate-share, never to a Vault or OpenBao on the same port.

A share given to this program is printed only where the contract says so: the
shares of ``init``, the new share when ``update`` completes, and the output of
``decode``. A share typed for ``adopt update`` or ``verify`` is never printed.
No share, pad or token is ever logged or part of an error message; the root
token is printed only by ``init`` and ``adopt start``, the pad only by ``start``.

The modules: ``root`` (the group and its global options), ``ceremony``,
``adopt``, ``custody`` and ``audit`` (the commands, grouped as the README
groups them), ``submit`` (one share to whichever ceremony is in progress),
``client`` (HTTP), ``output`` (what is printed), ``prompts`` (what is read),
``options`` and ``failure`` (shared by all).
"""

from app.cli.root import cli, main

__all__ = ["cli", "main"]
