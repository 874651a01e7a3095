"""The one HTTP module every collector goes through.

It owns the request policy so that collectors only say where to ask and how
to read the answer:

- a (connect, read) timeout on every request and a deadline for the whole
  body, so a server that drips bytes cannot hold a worker;
- a cap on the body size (``ResponseTooLarge`` past it);
- retries with exponential backoff and jitter for connection errors, 429
  and 5xx, honouring ``Retry-After`` (capped, so a server cannot park us for
  an hour) -- this is urllib3's ``Retry``, not a loop of our own;
- conditional GET: pass the stored ETag and Last-Modified and get 304 back;
- a clear User-Agent;
- an optional hook that receives every final response (the raw landing);
- an optional request policy (``collectors.politeness``): robots.txt, and
  per-host rate and concurrency limits shared by every client of a run;
- optional ``SessionPool``: the clients of one run share their requests
  sessions, so a host's connections are kept alive across its sources and
  its robots.txt, and the environment's proxy settings and ``~/.netrc`` are
  read once per host instead of on every request.

Any other 4xx, and a 429/5xx that is still failing after the retries, raise
``FetchError`` with the status and URL.
"""

from __future__ import annotations

import copy
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlsplit
from urllib.request import getproxies

import requests
import requests.auth
import requests.cookies
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import NETRC_FILES, get_netrc_auth
from urllib3.util.retry import Retry

from collectors.politeness import DEFAULT_MAX_CONCURRENCY  # connections kept per host
from engage.errors import FetchError, ParseError, ResponseTooLarge
from engage.settings import DEFAULT_USER_AGENT

RETRY_STATUSES = (429, 500, 502, 503, 504)


@dataclass
class HttpResponse:
    url: str
    status: int
    headers: CaseInsensitiveDict[str]
    body: bytes
    fetched_at: datetime
    elapsed: float
    attempts: int = 1
    # What was asked: the URL as the collector gave it, with ``params``
    # encoded (``url`` above is where the answer came from, after redirects).
    request_url: str | None = None
    params: dict[str, Any] | None = None

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    def json(self) -> Any:
        """The body as JSON; an HTML error page served as JSON is a ParseError."""
        try:
            return json.loads(self.body)
        except ValueError as exc:
            start = self.body[:200].decode("utf-8", "replace").strip()
            kind = "an HTML page" if start.lower().startswith(("<!doctype", "<html")) else "not JSON"
            raise ParseError(
                f"{self.url}: expected JSON but got {kind} "
                f"(HTTP {self.status}, content-type {self.headers.get('Content-Type')!r})"
            ) from exc


class _CappedRetry(Retry):
    """urllib3 Retry whose Retry-After wait never exceeds ``max_retry_after``."""

    max_retry_after: float = 60.0

    def get_retry_after(self, response: Any) -> float | None:
        value = super().get_retry_after(response)
        if value is None:
            return None
        return min(value, self.max_retry_after)

    def new(self, **kw: Any) -> _CappedRetry:
        new = super().new(**kw)
        new.max_retry_after = self.max_retry_after
        return new


class RequestPolicy(Protocol):
    """Decides whether and when a request may go out (see ``collectors.politeness``)."""

    def slot(self, url: str) -> AbstractContextManager[object]:
        """Block until ``url`` may be fetched and hold the host's slot while it is;
        raise a FetchError (e.g. disallowed by robots.txt) when it may not."""
        ...


def full_url(url: str, params: Mapping[str, Any] | None = None) -> str:
    """The URL with ``params`` encoded the way requests sends them."""
    if not params:
        return url
    return requests.Request("GET", url, params=params).prepare().url or url


class _NoAuth(requests.auth.AuthBase):
    """No credentials: what a host without a ~/.netrc entry gets."""

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        return r


_NO_AUTH = _NoAuth()


class _Session(requests.Session):
    """A requests session that reads the environment once per scheme and host.

    requests looks at every environment variable (proxies, ``NO_PROXY``, CA
    bundles) and for a ``~/.netrc`` entry on every request; a run of a
    thousand sources did that thousands of times. The answer only depends on
    the URL's scheme and host and the environment, which does not change
    during a run. Where no proxy is set at all and there is no netrc file
    (most machines), it does not depend on the host either, and is read once
    for the session.
    """

    def __init__(self) -> None:
        super().__init__()
        self._per_host: dict[tuple[Any, ...], Any] = {}
        self._per_host_lock = threading.Lock()
        # What requests would find for any host: no proxy (getproxies() also asks
        # the system's settings on macOS and Windows), no netrc file where it looks.
        self._proxies_by_host = bool(getproxies())
        netrc = os.environ.get("NETRC")
        places = (netrc,) if netrc is not None else tuple(f"~/{name}" for name in NETRC_FILES)
        self._netrc_by_host = any(os.path.exists(os.path.expanduser(place)) for place in places)

    def _once(self, key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
        """``make()``'s answer for ``key``, computed on the first ask."""
        with self._per_host_lock:
            known = self._per_host.get(key)
        if known is None:
            known = make()
            with self._per_host_lock:
                self._per_host[key] = known
        return known

    def _netrc_auth(self, url: str) -> tuple[str, str] | _NoAuth:
        """The ``~/.netrc`` login for ``url``'s host, or ``_NO_AUTH``: asked once per
        host (requests asks on every request), and not at all without a netrc file."""
        if not self._netrc_by_host:
            return _NO_AUTH
        parts = urlsplit(url)
        return self._once(("netrc", parts.scheme, parts.netloc), lambda: get_netrc_auth(url) or _NO_AUTH)

    def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
        """requests' own, with a short way for the common request: a GET with
        no body, no cookies on either side and no session params, auth or hooks.

        requests merges headers, params and two cookie jars generically on every
        request, with runtime ``Protocol`` checks that are slow on Python 3.11:
        about a sixth of the CPU of a conditional GET answered 304. The short
        way gives the same prepared request (headers merged the same way,
        ``None`` dropping a session header, params encoded by requests,
        netrc auth as requests finds it); anything else goes the long way, with
        the same netrc auth.
        """
        auth = request.auth
        if self.trust_env and not auth and not self.auth:
            auth = self._netrc_auth(request.url)
        if (
            request.cookies
            or len(self.cookies)
            or request.files
            or request.data
            or request.json is not None
            or self.params
            or self.auth
            or any(self.hooks.values())
        ):
            if (
                auth is not request.auth
            ):  # requests would ask netrc again; the caller's request stays as it was
                request = copy.copy(request)
                request.auth = auth
            return super().prepare_request(request)
        url = request.url
        headers = CaseInsensitiveDict(self.headers)
        headers.update(request.headers or {})
        for name in [name for name, value in headers.items() if value is None]:
            del headers[name]
        prepared = requests.PreparedRequest()
        prepared.prepare_method(request.method)
        prepared.prepare_url(url, request.params or None)
        prepared.prepare_headers(headers)
        # Both jars are empty: an empty jar, and no Cookie header.
        prepared.prepare_cookies(requests.cookies.RequestsCookieJar())
        prepared.prepare_body(None, None)
        prepared.prepare_auth(auth, url)
        prepared.prepare_hooks(request.hooks)
        return prepared

    def merge_environment_settings(
        self, url: str | None, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        if proxies or not self.trust_env or not url:
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        where = urlsplit(url)[:2] if self._proxies_by_host else ()
        known = self._once(
            ("environment", *where, stream, verify, cert),
            lambda: super(_Session, self).merge_environment_settings(url, proxies, stream, verify, cert),
        )
        return {**known, "proxies": dict(known["proxies"])}


# Hosts whose idle connections one shared session keeps.
HOSTS_PER_SESSION = 1024


class SessionPool:
    """The requests sessions of one run, shared by its ``HttpClient``s.

    One session per request policy (user agent, retries, backoff): clients
    with the same policy share it, so a host's keep-alive connections are
    reused by its next source and by the robots.txt fetch. Sessions hold no
    credentials (tokens travel per request); a host's cookies are shared by
    the run's sources on that host. Close it when the run ends.
    """

    def __init__(self) -> None:
        self._sessions: dict[tuple[Any, ...], requests.Session] = {}
        self._lock = threading.Lock()

    def session(self, key: tuple[Any, ...], make: Callable[[], requests.Session]) -> requests.Session:
        with self._lock:
            found = self._sessions.get(key)
            if found is None:
                found = self._sessions[key] = make()
            return found

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            session.close()

    def __enter__(self) -> SessionPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class HttpClient:
    """A requests session with the project's request policy.

    Create one per source and run (it is cheap); with ``sessions`` it borrows
    the run's shared session for its policy instead of making its own.
    Nothing is created at import time.
    """

    user_agent: str = DEFAULT_USER_AGENT
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    max_bytes: int = 10_000_000
    retries: int = 3
    backoff_factor: float = 0.5
    backoff_max: float = 30.0
    max_retry_after: float = 60.0
    deadline: float = 120.0
    on_response: Callable[[HttpResponse], None] | None = None
    before_request: Callable[[str], None] | None = None
    policy: RequestPolicy | None = None
    sessions: SessionPool | None = field(default=None, repr=False)
    session: requests.Session = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.sessions is None:
            self.session = self._new_session(hosts=10)
        else:  # the run's session for this policy, made by the first client that asks
            key = (self.user_agent, self.retries, self.backoff_factor, self.backoff_max, self.max_retry_after)
            self.session = self.sessions.session(key, lambda: self._new_session(hosts=HOSTS_PER_SESSION))

    def _new_session(self, hosts: int) -> requests.Session:
        retry = _CappedRetry(
            total=self.retries,
            connect=self.retries,
            read=self.retries,
            status=self.retries,
            other=0,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=frozenset({"GET", "HEAD"}),
            backoff_factor=self.backoff_factor,
            backoff_max=self.backoff_max,
            backoff_jitter=self.backoff_factor,
            respect_retry_after_header=True,
            raise_on_status=False,
            raise_on_redirect=False,
        )
        retry.max_retry_after = self.max_retry_after
        session = _Session()
        adapter = HTTPAdapter(max_retries=retry, pool_connections=hosts, pool_maxsize=DEFAULT_MAX_CONCURRENCY)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers["User-Agent"] = self.user_agent
        return session

    def close(self) -> None:
        if self.sessions is None:  # a shared session is closed with its pool
            self.session.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(
        self,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        etag: str | None = None,
        last_modified: str | None = None,
        ok_statuses: tuple[int, ...] = (200, 304),
    ) -> HttpResponse:
        """GET ``url``; raise FetchError unless the final status is in ``ok_statuses``."""
        send = dict(headers or {})
        if etag:
            send["If-None-Match"] = etag
        if last_modified:
            send["If-Modified-Since"] = last_modified
        target = full_url(url, params)
        if self.before_request is not None:
            self.before_request(target)
        with self.policy.slot(target) if self.policy is not None else nullcontext():
            result = self._exchange(url, params, send)
        result.request_url = target
        result.params = dict(params) if params else None
        if self.on_response is not None:
            self.on_response(result)
        if result.status not in ok_statuses:
            reason = _reason(result)
            raise FetchError(url, reason, status=result.status)
        return result

    def _exchange(self, url: str, params: Mapping[str, Any] | None, send: Mapping[str, str]) -> HttpResponse:
        """One request over the network (with urllib3's retries) and its capped body."""
        started = time.monotonic()
        try:
            resp = self.session.get(
                url,
                params=params,
                headers=send,
                timeout=(self.connect_timeout, self.read_timeout),
                stream=True,
                allow_redirects=True,
            )
        except requests.exceptions.RetryError as exc:
            raise FetchError(url, f"gave up after {self.retries} retries: {exc}") from exc
        except requests.exceptions.Timeout as exc:
            raise FetchError(url, f"timed out after {self.retries} retries") from exc
        except requests.exceptions.ConnectionError as exc:
            raise FetchError(url, f"connection failed: {_short(exc)}") from exc
        except requests.exceptions.RequestException as exc:
            raise FetchError(url, f"request failed: {_short(exc)}") from exc
        try:
            body = self._read_capped(resp, url, started)
        finally:
            resp.close()
        history = getattr(getattr(resp.raw, "retries", None), "history", ()) or ()
        return HttpResponse(
            url=resp.url,
            status=resp.status_code,
            headers=CaseInsensitiveDict(resp.headers),
            body=body,
            fetched_at=datetime.now(UTC),
            elapsed=time.monotonic() - started,
            attempts=1 + len(history),
        )

    def _read_capped(self, resp: requests.Response, url: str, started: float) -> bytes:
        declared = resp.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > self.max_bytes:
            raise ResponseTooLarge(url, f"response of {declared} bytes exceeds the {self.max_bytes}-byte cap")
        parts: list[bytes] = []
        size = 0
        try:
            for chunk in resp.iter_content(chunk_size=65536):
                size += len(chunk)
                if size > self.max_bytes:
                    raise ResponseTooLarge(url, f"response exceeds the {self.max_bytes}-byte cap")
                if time.monotonic() - started > self.deadline:
                    raise FetchError(url, f"body not received within {self.deadline:.0f} s")
                parts.append(chunk)
        except requests.exceptions.RequestException as exc:
            raise FetchError(url, f"reading the body failed: {_short(exc)}") from exc
        return b"".join(parts)


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 300 else text[:300] + "..."


def _reason(resp: HttpResponse) -> str:
    if resp.status == 429:
        after = resp.headers.get("Retry-After")
        return "rate limited (429)" + (f", Retry-After {after}" if after else "")
    if resp.status >= 500:
        return f"server error {resp.status} after retries"
    return {
        401: "unauthorised (401): check the token",
        403: "forbidden (403)",
        404: "not found (404)",
        410: "gone (410)",
    }.get(resp.status, f"unexpected HTTP status {resp.status}")
