"""The shared HTTP module against a real loopback server."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from collectors.http import HttpClient
from engage.errors import FetchError, ParseError, ResponseTooLarge


def fast_client(**kw: object) -> HttpClient:
    defaults: dict[str, object] = {
        "retries": 2,
        "backoff_factor": 0.0,
        "read_timeout": 2.0,
        "max_retry_after": 1.0,
    }
    defaults.update(kw)
    return HttpClient(**defaults)  # type: ignore[arg-type]


def test_200_returns_body_headers_and_sends_user_agent(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/feed", headers={"User-Agent": "engage-test/1"}).respond_with_data(
        "<rss/>", headers={"ETag": '"v1"'}
    )
    resp = fast_client(user_agent="engage-test/1").get(httpserver.url_for("/feed"))
    assert resp.status == 200
    assert resp.body == b"<rss/>"
    assert resp.headers["etag"] == '"v1"'


def test_conditional_get_sends_validators_and_accepts_304(httpserver: HTTPServer) -> None:
    httpserver.expect_request(
        "/feed", headers={"If-None-Match": '"v1"', "If-Modified-Since": "Fri, 20 Nov 2026 00:00:00 GMT"}
    ).respond_with_data("", status=304)
    resp = fast_client().get(
        httpserver.url_for("/feed"), etag='"v1"', last_modified="Fri, 20 Nov 2026 00:00:00 GMT"
    )
    assert resp.not_modified


@pytest.mark.parametrize(
    ("status", "words"), [(404, "not found"), (410, "gone"), (401, "unauthorised"), (403, "forbidden")]
)
def test_client_errors_fail_at_once_with_the_status(httpserver: HTTPServer, status: int, words: str) -> None:
    httpserver.expect_request("/x").respond_with_data("no", status=status)
    with pytest.raises(FetchError, match=words) as info:
        fast_client().get(httpserver.url_for("/x"))
    assert info.value.status == status
    assert len(httpserver.log) == 1  # not retried


def test_429_with_retry_after_is_waited_for_then_retried(httpserver: HTTPServer) -> None:
    stamps: list[float] = []

    def handler(request: Request) -> Response:
        stamps.append(time.monotonic())
        if len(stamps) == 1:
            return Response("slow down", status=429, headers={"Retry-After": "1"})
        return Response("ok")

    httpserver.expect_request("/x").respond_with_handler(handler)
    resp = fast_client().get(httpserver.url_for("/x"))
    assert resp.body == b"ok"
    assert resp.attempts == 2
    assert stamps[1] - stamps[0] >= 0.9  # the server's Retry-After was honoured


def test_retry_after_is_capped(httpserver: HTTPServer) -> None:
    calls: list[float] = []

    def handler(request: Request) -> Response:
        calls.append(time.monotonic())
        if len(calls) == 1:
            return Response("later", status=429, headers={"Retry-After": "3600"})
        return Response("ok")

    httpserver.expect_request("/x").respond_with_handler(handler)
    started = time.monotonic()
    assert fast_client(max_retry_after=0.2).get(httpserver.url_for("/x")).body == b"ok"
    assert time.monotonic() - started < 30  # not an hour


def test_500_then_success_is_retried(httpserver: HTTPServer) -> None:
    httpserver.expect_ordered_request("/x").respond_with_data("boom", status=500)
    httpserver.expect_ordered_request("/x").respond_with_data("fine")
    assert fast_client().get(httpserver.url_for("/x")).body == b"fine"


def test_persistent_5xx_gives_up_with_the_status(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/x").respond_with_data("boom", status=503)
    with pytest.raises(FetchError, match="503") as info:
        fast_client(retries=2).get(httpserver.url_for("/x"))
    assert info.value.status == 503
    assert len(httpserver.log) == 3  # one try and two retries


def test_slow_server_past_the_timeout_fails(httpserver: HTTPServer) -> None:
    def slow(request: Request) -> Response:
        time.sleep(1.5)
        return Response("late")

    httpserver.expect_request("/slow").respond_with_handler(slow)
    with pytest.raises(FetchError, match="timed out|failed"):
        fast_client(read_timeout=0.3, retries=1).get(httpserver.url_for("/slow"))


def test_oversized_body_is_refused(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/big").respond_with_data(b"x" * 200_000)
    with pytest.raises(ResponseTooLarge, match="cap"):
        fast_client(max_bytes=50_000).get(httpserver.url_for("/big"))


def test_oversized_chunked_body_without_length_is_refused(httpserver: HTTPServer) -> None:
    def stream(request: Request) -> Response:
        def chunks():  # type: ignore[no-untyped-def]
            for _ in range(100):
                yield b"y" * 10_000

        return Response(chunks(), direct_passthrough=True)

    httpserver.expect_request("/stream").respond_with_handler(stream)
    with pytest.raises(ResponseTooLarge):
        fast_client(max_bytes=100_000).get(httpserver.url_for("/stream"))


def test_html_error_page_served_as_json_is_a_parse_error(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api").respond_with_data(
        "<!DOCTYPE html><html><body>Too many requests</body></html>", content_type="application/json"
    )
    resp = fast_client().get(httpserver.url_for("/api"))
    with pytest.raises(ParseError, match="HTML page"):
        resp.json()


def test_connection_refused_is_a_fetch_error() -> None:
    with pytest.raises(FetchError, match="connection failed|retries"):
        fast_client(retries=0).get("http://127.0.0.1:9/nothing")


def test_clients_of_a_run_share_one_session_and_its_connections(httpserver: HTTPServer) -> None:
    from collectors.http import SessionPool

    httpserver.expect_request("/a").respond_with_data("a")
    with SessionPool() as pool:
        first, second = HttpClient(sessions=pool), HttpClient(sessions=pool)
        other_policy = HttpClient(sessions=pool, retries=1)
        assert first.session is second.session and other_policy.session is not first.session
        assert first.get(httpserver.url_for("/a")).body == b"a"
        first.close()  # a client does not close the run's session
        assert second.get(httpserver.url_for("/a")).body == b"a"
        adapter = second.session.get_adapter(httpserver.url_for("/a"))
        assert len(adapter.poolmanager.pools) == 1  # one pool for the host, reused


def test_proxies_from_the_environment_are_still_used(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The session reads the environment once per host, but reads it: a proxy in HTTP_PROXY is used."""
    monkeypatch.setenv("HTTP_PROXY", httpserver.url_for("/").rstrip("/"))
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    httpserver.expect_request("/feed.xml").respond_with_data("via the proxy")
    client = HttpClient(retries=0)
    for _ in range(2):  # the second request takes the settings kept for the host
        assert client.get("http://feeds.example.invalid/feed.xml").body == b"via the proxy"
    assert [r.headers["Host"] for r, _ in httpserver.log] == ["feeds.example.invalid"] * 2


def test_without_proxies_or_netrc_the_environment_is_read_once_for_every_host(
    httpserver: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No proxy variable and no netrc file: the answer is the same for every host, read once."""
    import requests.sessions

    import collectors.http as http_module

    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-such-netrc"))
    calls = {"environment": 0, "netrc": 0}

    def counted(name: str, real):  # type: ignore[no-untyped-def]
        def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
            calls[name] += 1
            return real(*args, **kwargs)

        return spy

    monkeypatch.setattr(
        requests.sessions,
        "get_environ_proxies",
        counted("environment", requests.sessions.get_environ_proxies),
    )
    monkeypatch.setattr(http_module, "get_netrc_auth", counted("netrc", http_module.get_netrc_auth))
    httpserver.expect_request("/feed.xml").respond_with_data("feed")
    url = httpserver.url_for("/feed.xml")
    host = urlsplit(url).hostname
    other = {"localhost": "127.0.0.1", "127.0.0.1": "localhost"}[host]
    client = HttpClient(retries=0)
    for _ in range(3):
        assert client.get(url).body == b"feed"
        assert client.get(url.replace(host, other)).body == b"feed"
    assert calls == {"environment": 1, "netrc": 0}
    assert [r.headers.get("Authorization") for r, _ in httpserver.log] == [None] * 6


def test_a_netrc_entry_is_still_sent_to_its_host_only(
    httpserver: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The session looks ~/.netrc up once per host, but looks: its login goes to that host alone."""
    url = httpserver.url_for("/private.xml")
    host = urlsplit(url).hostname
    other = {"localhost": "127.0.0.1", "127.0.0.1": "localhost"}[host]
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine {host} login reader password s3cret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    httpserver.expect_request("/private.xml").respond_with_data("members only")
    client = HttpClient(retries=0)
    for _ in range(2):
        assert client.get(url).body == b"members only"
    assert client.get(url.replace(host, other)).body == b"members only"
    sent = [r.headers.get("Authorization") for r, _ in httpserver.log]
    assert sent == ["Basic " + base64.b64encode(b"reader:s3cret").decode()] * 2 + [None]


@pytest.mark.parametrize(
    "request_kw",
    [
        {"headers": {"If-None-Match": '"v1"'}},
        {"params": {"page": 2, "q": "a b"}, "headers": {"Accept": "application/json"}},
        {"params": [("tag", "a"), ("tag", "b")]},
        {"headers": {"User-Agent": None, "Authorization": "Bearer t"}},  # None drops a session header
        {"url": "http://reader:s3cret@feeds.example.invalid/feed.xml"},  # credentials in the URL
        {"auth": ("reader", "s3cret")},
        {"cookies": {"session": "abc"}},  # the long way
        {"params": [("tag", "a"), ("tag", "b")], "data": {"x": "1"}, "method": "POST"},  # the long way
    ],
)
def test_the_session_prepares_requests_as_requests_does(request_kw: dict[str, object]) -> None:
    """The short way of ``_Session.prepare_request`` gives what requests' own gives."""
    import requests

    from collectors.http import _Session

    kw = {"method": "GET", "url": "http://feeds.example.invalid/feed.xml?lang=en", **request_kw}
    ours, theirs = _Session(), requests.Session()
    for session in (ours, theirs):
        session.trust_env = False  # no netrc from the machine running the tests
        session.headers["User-Agent"] = "engage-test/1"
    mine = ours.prepare_request(requests.Request(**kw))  # type: ignore[arg-type]
    reference = requests.Session.prepare_request(theirs, requests.Request(**kw))  # type: ignore[arg-type]
    assert (mine.method, mine.url, mine.body) == (reference.method, reference.url, reference.body)
    assert dict(mine.headers) == dict(reference.headers)


def test_a_cookie_set_by_a_host_is_sent_back_to_it(httpserver: HTTPServer) -> None:
    """Once the session holds a cookie, requests take requests' own way, which sends it."""
    httpserver.expect_request("/login").respond_with_response(
        Response("ok", headers={"Set-Cookie": "session=abc; Path=/"})
    )
    httpserver.expect_request("/feed.xml").respond_with_data("feed")
    client = HttpClient(retries=0)
    client.get(httpserver.url_for("/feed.xml"))
    client.get(httpserver.url_for("/login"))
    client.get(httpserver.url_for("/feed.xml"))
    assert [r.headers.get("Cookie") for r, _ in httpserver.log] == [None, None, "session=abc"]
