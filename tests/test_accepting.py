"""app.accepting: when every slot is taken, the kept-alive connection idle the longest makes room."""

import logging
import selectors
import socket

import pytest

from app.accepting import Acceptor
from app.connection import CLOSED, IDLE, READING, Conn
from app.framing import Limits


@pytest.fixture
def peers():
    """The client ends of the test's socket pairs, closed at the end."""
    ends: list[socket.socket] = []
    yield ends
    for sock in ends:
        sock.close()


def _acceptor(limit: int) -> Acceptor:
    return Acceptor(
        [],
        selectors.DefaultSelector(),
        limits=Limits(),
        connection_limit=limit,
        per_address=limit,
        deadline=10.0,
        log=logging.getLogger("test"),
    )


def _conn(acceptor: Acceptor, peers: list, state: str, deadline: float) -> Conn:
    """Open one connection in ``state`` (an idle one's deadline is when it went idle plus the keep-alive)."""
    ours, theirs = socket.socketpair()
    peers.append(theirs)
    conn = Conn(ours, ("127.0.0.1", 1), ("127.0.0.1", 2), limits=Limits(), now=0.0, poller=acceptor.poller)
    conn.state, conn.deadline = state, deadline
    acceptor.conns[conn] = None
    acceptor.per_address.add(conn.address)
    return conn


def test_the_connection_idle_the_longest_is_closed_not_the_one_accepted_first(peers):
    acceptor = _acceptor(3)
    first = _conn(acceptor, peers, IDLE, deadline=25.0)  # accepted first, idle since a moment ago
    busy = _conn(acceptor, peers, READING, deadline=1.0)  # a request on its way: never closed for room
    longest = _conn(acceptor, peers, IDLE, deadline=12.0)  # idle since long before
    assert acceptor._room() is True
    assert longest.state == CLOSED and longest not in acceptor.conns
    assert first.state == IDLE and busy.state == READING and len(acceptor.conns) == 2
    assert acceptor._room() is True  # a slot is free now: nothing more is closed
    assert first.state == IDLE
    for conn in list(acceptor.conns):
        acceptor.close(conn)


def test_with_no_idle_connection_there_is_no_room(peers):
    acceptor = _acceptor(1)
    busy = _conn(acceptor, peers, READING, deadline=1.0)
    assert acceptor._room() is False
    assert busy.state == READING
    acceptor.close(busy)
