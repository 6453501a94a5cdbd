from __future__ import annotations

import asyncio
import gzip
import random
import time
from http.server import BaseHTTPRequestHandler

import pytest

from extractors.http import Fetcher, Response, check_url, parse_retry_after, user_agent
from newsmon import __version__
from newsmon.config import HttpSettings
from newsmon.errors import BlockedURLError, FetchError
from tests.conftest import RouteServer

OPEN = HttpSettings(allow_private_networks=True, timeout_s=2)


def get(settings: HttpSettings, url: str, **kw: object) -> Response:
    async def go() -> Response:
        async with Fetcher(settings) as f:
            return await f.get(url, max_bytes=int(kw.pop("max_bytes", 100_000)), **kw)  # type: ignore[arg-type]
    return asyncio.run(go())


def test_default_settings_refuse_loopback_before_any_request(routes: RouteServer) -> None:
    url = routes.add("/feed.xml", body=b"<rss/>")
    with pytest.raises(BlockedURLError, match="non-public address 127.0.0.1") as err:
        get(HttpSettings(), url)
    assert url in str(err.value)
    assert routes.hits == []


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/x", "gopher://x/", "http:///nohost"])
def test_non_http_schemes_are_refused(url: str) -> None:
    with pytest.raises(BlockedURLError, match="only http"):
        asyncio.run(check_url(url, allow_private=True))


def test_redirect_to_loopback_is_rechecked_at_each_hop(routes: RouteServer) -> None:
    target = routes.add("/inner", body=b"x")
    routes.add("/outer", status=302, headers={"Location": target})
    # the first hop is allowed here only because we ask check_url directly for the second one
    with pytest.raises(BlockedURLError):
        asyncio.run(check_url(target, allow_private=False))
    assert get(OPEN, routes.base_url + "/outer").final_url == target


def test_user_agent_names_newsmon_version_and_contact(routes: RouteServer) -> None:
    seen: list[str] = []

    def echo(h: BaseHTTPRequestHandler) -> None:
        seen.append(h.headers["User-Agent"])
        h.send_response(200)
        h.send_header("Content-Length", "0")
        h.end_headers()
    routes.routes["/ua"] = echo
    get(OPEN, routes.base_url + "/ua")
    assert seen == [user_agent(OPEN.contact_url)]
    assert f"newsmon/{__version__}" in seen[0] and OPEN.contact_url in seen[0]


def test_conditional_get_sends_validators_and_returns_304(routes: RouteServer) -> None:
    got: dict[str, str] = {}

    def cond(h: BaseHTTPRequestHandler) -> None:
        got.update({"inm": h.headers.get("If-None-Match", ""), "ims": h.headers.get("If-Modified-Since", "")})
        h.send_response(304)
        h.end_headers()
    routes.routes["/c"] = cond
    resp = get(OPEN, routes.base_url + "/c", etag='"abc"', last_modified="Tue, 03 Jun 2025 09:00:00 GMT")
    assert resp.status == 304
    assert got == {"inm": '"abc"', "ims": "Tue, 03 Jun 2025 09:00:00 GMT"}


@pytest.mark.parametrize("status, advice", [(404, "fix or remove"), (410, "Gone"), (500, "server error"),
                                            (403, "refuses this client")])
def test_error_statuses_name_url_and_advice(routes: RouteServer, status: int, advice: str) -> None:
    url = routes.add("/e", status=status)
    with pytest.raises(FetchError, match=advice) as err:
        get(OPEN, url)
    assert err.value.status == status and url in str(err.value)


def test_429_carries_retry_after(routes: RouteServer) -> None:
    url = routes.add("/r", status=429, headers={"Retry-After": "120"})
    with pytest.raises(FetchError) as err:
        get(OPEN, url)
    assert err.value.retry_after == 120


def test_body_over_the_cap_is_refused_while_streaming(routes: RouteServer) -> None:
    url = routes.add("/big", body=b"x" * 50_000)
    with pytest.raises(FetchError, match="cap"):
        get(OPEN, url, max_bytes=10_000)


def test_bodies_of_many_reads_arrive_whole_on_a_reused_connection_and_the_cap_holds(routes: RouteServer) -> None:
    """A body is read up to 256 KiB at a time (extractors.http.WholeReads): megabytes arrive byte for byte, with
    a declared length or without one (read to the close), and the cap still stops an undeclared one."""
    body = random.Random(3).randbytes(3_000_000)
    declared = routes.add("/declared", body=body, content_type="text/html")

    def undeclared(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/html")
        h.send_header("Connection", "close")
        h.end_headers()
        for i in range(0, len(body), 100_000):
            h.wfile.write(body[i:i + 100_000])
        h.close_connection = True
    routes.routes["/undeclared"] = undeclared

    async def go() -> list[bytes]:
        async with Fetcher(OPEN) as f:
            return [(await f.get(u, max_bytes=4_000_000)).body
                    for u in (declared, declared, routes.base_url + "/undeclared")]
    assert asyncio.run(go()) == [body, body, body]
    with pytest.raises(FetchError, match="cap"):
        get(OPEN, routes.base_url + "/undeclared", max_bytes=1_000_000)


def test_gzip_bomb_is_capped_on_decoded_size(routes: RouteServer) -> None:
    bomb = gzip.compress(b"\0" * 20_000_000)
    url = routes.add("/bomb", body=bomb, headers={"Content-Encoding": "gzip"})
    with pytest.raises(FetchError, match="cap"):
        get(OPEN, url, max_bytes=1_000_000)


def test_redirect_loop_is_an_error(routes: RouteServer) -> None:
    routes.add("/a", status=302, headers={"Location": "/b"})
    routes.add("/b", status=302, headers={"Location": "/a"})
    with pytest.raises(FetchError, match="redirects"):
        get(OPEN, routes.base_url + "/a")


def test_permanent_redirect_is_reported(routes: RouteServer) -> None:
    new = routes.add("/new", body=b"ok")
    routes.add("/old", status=301, headers={"Location": "/new"})
    resp = get(OPEN, routes.base_url + "/old")
    assert resp.permanent_redirect == new and resp.body == b"ok"


def test_a_hanging_server_times_out_within_bounds(routes: RouteServer) -> None:
    def hang(h: BaseHTTPRequestHandler) -> None:
        time.sleep(5)
    routes.routes["/hang"] = hang
    t0 = time.monotonic()
    with pytest.raises(FetchError, match="timed out|too slow"):
        get(HttpSettings(allow_private_networks=True, timeout_s=0.5), routes.base_url + "/hang")
    assert time.monotonic() - t0 < 3


def test_parse_retry_after() -> None:
    assert parse_retry_after("30") == 30
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_requests_to_one_host_are_spaced_while_other_hosts_are_not_held_up(routes: RouteServer) -> None:
    url = routes.add("/p", body=b"x")
    other = url.replace("127.0.0.1", "localhost")
    paced = HttpSettings(allow_private_networks=True, timeout_s=2, per_host_delay_s=0.2, jitter_s=0, max_per_host=4)

    async def go() -> tuple[list[float], float]:
        async with Fetcher(paced) as f:
            t0 = time.monotonic()

            async def stamp(u: str) -> float:
                await f.get(u, max_bytes=100)
                return time.monotonic() - t0
            same = await asyncio.gather(*(stamp(url) for _ in range(4)))
            t1 = time.monotonic()
            await f.get(other, max_bytes=100)
            return sorted(same), time.monotonic() - t1
    same, other_host = asyncio.run(go())
    assert same[-1] >= 0.6  # four requests to one host start 0.2 s apart
    assert other_host < 0.2  # the first request to another host starts at once


def test_503_carries_an_http_date_retry_after(routes: RouteServer) -> None:
    url = routes.add("/busy", status=503, headers={"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"})
    with pytest.raises(FetchError, match="503.*Retry-After") as err:
        get(OPEN, url)
    assert err.value.retry_after is not None and err.value.retry_after > 86400
