"""The wall-clock deadline of an HTTP call (relay.http_deadline), over real sockets to a fake
that trickles its answers one byte at a time, each byte well inside the read timeout."""

from __future__ import annotations

import time

import pytest
import requests

from relay.http_deadline import DeadlineExceeded, deadline, mount_deadlines
from relay.sandbox.fakes._http import FakeHTTPServer, RecordedCall, Reply

BODY = b'{"answer": "' + b"x" * 200 + b'"}'


class Dribbler(FakeHTTPServer):
    """Answers with BODY at once on /quick, a byte every 50 ms on /slow, and on /long 5,000
    bytes a byte every 10 ms (its ~80 bytes of head within a second, its body in 50 s)."""

    def handle(self, call: RecordedCall) -> Reply:
        if call.path == "/long":
            return Reply(body=b"y" * 5000, trickle=0.01)
        return Reply(body=BODY, trickle=0 if call.path == "/quick" else 0.05)


@pytest.fixture(scope="module")
def server():
    with Dribbler() as fake:
        yield fake


@pytest.fixture
def session() -> requests.Session:
    return mount_deadlines(requests.Session())


def test_a_trickled_answer_is_cut_at_the_deadline_though_no_read_times_out(server, session):
    with pytest.raises(DeadlineExceeded), deadline(0.5):
        session.get(server.url + "/slow", timeout=(1, 1))


def test_a_streamed_body_read_after_the_block_is_cut_at_the_same_deadline(server, session):
    """The connection stays watched until it goes back to the pool: reading the body later
    is cut at the call's deadline too (or the head itself was, on a very slow machine)."""
    with pytest.raises(requests.RequestException):  # noqa: PT012 - either step may be cut
        with deadline(2):
            answer = session.get(server.url + "/long", timeout=(1, 1), stream=True)
        answer.content  # noqa: B018 - reading it is the point


def test_calls_that_end_in_time_keep_their_pooled_connection(server, session):
    """Each call's deadline passes while a later call uses the same pooled connection: the
    watchdog never cuts a connection once it is back in the pool."""
    for _ in range(10):
        with deadline(0.2):
            assert session.get(server.url + "/quick", timeout=(1, 1)).content == BODY
        time.sleep(0.1)
    assert len(server.calls_to("/quick")) == 10
