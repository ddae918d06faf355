"""The build systems' API adapter against real loopback servers: a credential goes to the
configured API and nowhere else, whatever that API answers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from relay.errors import UpstreamError
from relay.sandbox.fakes._http import FakeApi, RecordedCall, Reply, json_reply
from relay.sources._api import SourceApi

TOKEN = "build-system-token-5f1c"
CREDENTIALS = {"Authorization": f"Bearer {TOKEN}", "x-auth-token": TOKEN, "X-Api-Key": TOKEN}


class Api(FakeApi):
    name = "fake-api"

    def handle(self, call: RecordedCall) -> Reply:
        return self.scripted(call) or json_reply(200, {"ok": True})


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Api, Api]]:
    with Api() as configured, Api() as elsewhere:
        yield configured, elsewhere


@pytest.fixture
def configured(servers: tuple[Api, Api]) -> Api:
    servers[0].reset()
    return servers[0]


@pytest.fixture
def elsewhere(servers: tuple[Api, Api]) -> Api:
    """Another origin: the same loopback host on another port, as a redirect could name."""
    servers[1].reset()
    return servers[1]


def redirect(status: int, location: str) -> Reply:
    return Reply(status=status, headers=(("Location", location),))


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_redirect_is_never_followed_and_the_credential_never_leaves(
    configured: Api, elsewhere: Api, status: int, method: str
) -> None:
    configured.fail("/thing", redirect(status, f"{elsewhere.url}/stolen"))
    api = SourceApi("Example", configured.url, timeout=5)
    with pytest.raises(UpstreamError, match=f"answered {status}, a redirect: not followed"):
        api.request_json(method, "/thing", headers=CREDENTIALS, json_body={"a": 1})
    assert elsewhere.calls == []
    (call,) = configured.calls
    assert call.headers["x-auth-token"] == TOKEN


def test_a_redirect_on_the_same_origin_is_not_followed_either(configured: Api) -> None:
    configured.fail("/thing", redirect(302, f"{configured.url}/other"))
    api = SourceApi("Example", configured.url, timeout=5)
    with pytest.raises(UpstreamError, match="a redirect: not followed"):
        api.request_json("GET", "/thing", headers=CREDENTIALS)
    assert [c.path for c in configured.calls] == ["/thing"]


def test_redirect_location_reads_the_link_without_fetching_it(
    configured: Api, elsewhere: Api
) -> None:
    configured.fail("/asset", redirect(302, f"{elsewhere.url}/signed?sig=1"))
    api = SourceApi("Example", configured.url, timeout=5)
    assert api.redirect_location("/asset", headers=CREDENTIALS) == f"{elsewhere.url}/signed?sig=1"
    assert elsewhere.calls == []


def test_an_apis_answer_is_read_with_readable_strings(configured: Api) -> None:
    configured.fail("/build", Reply(body=b'{"branch": "main\\udfff"}'))
    api = SourceApi("Example", configured.url, timeout=5)
    assert api.request_json("GET", "/build") == {"branch": "main\ufffd"}
