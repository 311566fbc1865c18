"""http_get cannot be turned against private networks: ports, redirects from public hosts, IPv6 forms of IPv4
addresses, and compressed bodies that inflate past the size limit. Real HTTP servers on loopback addresses."""

from __future__ import annotations

import ipaddress
import zlib

import pytest
from aiohttp import web

from agents.blocks import BlockError, run_block
from agents.blocks import http_get as http_get_module
from tests.agents.test_block_limits import peak_memory
from tests.agents.test_more_blocks import LocalSite, no_connection  # noqa: F401 (a fixture)

# The fake: 127.0.0.2 stands for a public address (a server on the internet); nothing public can be served here.
PUBLIC_STAND_IN = ipaddress.ip_address("127.0.0.2")
BOMB_BYTES = 200 * 1024 * 1024


def compressed(data_chunks, wbits: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, wbits)
    return b"".join(compressor.compress(chunk) for chunk in data_chunks) + compressor.flush()


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    """200 MiB of "A", gzip- and deflate-compressed: about 200 kB each."""
    chunks = [b"A" * (1024 * 1024)] * (BOMB_BYTES // (1024 * 1024))
    return {"gzip": compressed(chunks, 16 + zlib.MAX_WBITS), "deflate": compressed(chunks, zlib.MAX_WBITS)}


class EncodingSite(LocalSite):
    """A LocalSite that also sends bodies compressed although the client asked for identity."""

    def __init__(self, address: str, bombs: dict[str, bytes]) -> None:
        super().__init__(address)
        self.bombs = bombs
        self.app.router.add_get("/bomb/{encoding}", self.bomb)
        self.app.router.add_get("/small-gzip", self.small_gzip)
        self.app.router.add_get("/claims/{encoding}", self.claims)

    def _encoded(self, body: bytes, encoding: str) -> web.Response:
        return web.Response(body=body, headers={"Content-Type": "text/plain", "Content-Encoding": encoding})

    async def bomb(self, request: web.Request) -> web.Response:
        self._seen(request)
        assert request.headers["Accept-Encoding"] == "identity"  # it asked; this server ignores it
        return self._encoded(self.bombs[request.match_info["encoding"]], request.match_info["encoding"])

    async def small_gzip(self, request: web.Request) -> web.Response:
        self._seen(request)
        return self._encoded(compressed([b"hello, compressed"], 16 + zlib.MAX_WBITS), "gzip")

    async def claims(self, request: web.Request) -> web.Response:
        """Says the body is in an encoding; it is not."""
        self._seen(request)
        return self._encoded(b"not really encoded", request.match_info["encoding"])


@pytest.fixture
async def start_site(bombs):
    """Start EncodingSites on loopback addresses; each is stopped after the test."""
    started: list[EncodingSite] = []

    async def start(address: str = "127.0.0.1") -> EncodingSite:
        site = EncodingSite(address, bombs)
        await site.start()
        started.append(site)
        return site

    yield start
    for site in started:
        await site.stop()


@pytest.fixture
def allow(settings):
    def configure(*entries: str, **extra) -> None:
        settings.COPILOT = {**settings.COPILOT, "HTTP_GET_ALLOWED_HOSTS": list(entries), **extra}

    return configure


@pytest.fixture
def public_stand_in(monkeypatch):
    """Take 127.0.0.2 for a public address, everything else as it is."""
    real_refusal = http_get_module.refusal
    monkeypatch.setattr(http_get_module, "refusal",
                        lambda address: None if address == PUBLIC_STAND_IN else real_refusal(address))


async def fetch(url: str) -> dict:
    return await run_block("http_get", {"url": url})


# --- ports ---


async def test_an_entry_without_a_port_allows_only_the_default_port(start_site, allow):
    site = await start_site()
    allow("127.0.0.1")
    with pytest.raises(BlockError) as caught:
        await fetch(site.url("/ok"))
    assert str(caught.value) == (
        f"http_get: HTTP_GET_ALLOWED_HOSTS allows '127.0.0.1' on port 80 only, not {site.port} (an entry without "
        f"a port allows the default port of the URL's scheme; an entry like '127.0.0.1:{site.port}' allows another)")
    assert site.paths == []  # refused before connecting
    target = await http_get_module.check(http_get_module.parse_url("http://127.0.0.1/"))
    assert str(target.url) == "http://127.0.0.1/"
    with pytest.raises(BlockError, match="allows '127.0.0.1' on port 443 only, not 80"):
        await http_get_module.check(http_get_module.parse_url("https://127.0.0.1:80/"))


async def test_an_entry_with_a_port_allows_that_port_only(start_site, allow):
    site, other = await start_site(), await start_site()
    allow(site.entry)
    assert (await fetch(site.url("/ok")))["text"] == "hello, block"
    with pytest.raises(BlockError, match=f"allows '127.0.0.1' on port {site.port} only, not {other.port}"):
        await fetch(other.url("/ok"))
    with pytest.raises(BlockError, match=f"on port {site.port} only, not 80"):
        await fetch("http://127.0.0.1/ok")
    assert other.paths == [] and site.paths == ["/ok"]


async def test_ipv6_and_named_entries_with_ports(start_site, allow):
    site_v6 = await start_site("::1")
    site_v4 = await start_site()
    allow(f"[::1]:{site_v6.port}", f"LocalHost:{site_v4.port}")
    assert site_v6.entry == f"[::1]:{site_v6.port}"
    assert (await fetch(site_v6.url("/ok")))["text"] == "hello, block"
    assert (await fetch(f"http://[0:0::1]:{site_v6.port}/host"))["text"] == f"[0:0::1]:{site_v6.port}"
    assert (await fetch(site_v4.url("/ok", host="localhost")))["text"] == "hello, block"
    with pytest.raises(BlockError, match="allows '::1' on port"):
        await fetch(f"http://[::1]:{site_v4.port}/ok")


@pytest.mark.usefixtures("no_connection")
async def test_a_wildcard_entry_allows_the_default_port_unless_it_names_one(allow):
    allow("*")
    with pytest.raises(BlockError, match="allows '93.184.215.14' on port 80 only, not 8080"):
        await fetch("http://93.184.215.14:8080/")
    allow("*.example.test:8443")
    with pytest.raises(BlockError, match="allows 'api.example.test' on port 8443 only, not 443"):
        await fetch("https://api.example.test/")


@pytest.mark.parametrize("entry", ["api.example.com:0", "api.example.com:65536", "api.example.com:http",
                                   "api.example.com:", ":8080", "[::1", "[::1]8080", "[::1]:", "[nope]:80",
                                   "a:b:c", "api.example.com:８０"])
@pytest.mark.usefixtures("no_connection")
async def test_a_bad_entry_is_a_clear_error(entry, allow):
    allow("127.0.0.1", entry)
    with pytest.raises(BlockError) as caught:
        await fetch("http://127.0.0.1/")
    assert str(caught.value).startswith(f"http_get: the setting HTTP_GET_ALLOWED_HOSTS has a bad entry {entry!r}: ")


# --- redirects may not lead from a public address to a private one ---


async def test_a_public_host_cannot_redirect_to_a_private_host_listed_exactly(start_site, allow, public_stand_in):
    public, private = await start_site("127.0.0.2"), await start_site()
    allow(public.entry, private.entry, f"localhost:{private.port}")
    for target in (private.url("/ok"), private.url("/ok", host="localhost")):
        with pytest.raises(BlockError) as caught:
            await fetch(public.url(f"/redirect?to={target}"))
        assert str(caught.value).startswith(f"http_get: refused the redirect to '{target}': ")
        assert str(caught.value).endswith("is a loopback address (127.0.0.1); a redirect from a public address "
                                          "may not lead to a private one, even one listed exactly")
    assert private.paths == [] and public.paths == ["/redirect", "/redirect"]
    assert (await fetch(private.url("/ok")))["text"] == "hello, block"  # fetched directly, it is allowed


async def test_a_private_listed_host_may_redirect_to_another(start_site, allow):
    first, second = await start_site(), await start_site("127.0.0.3")
    allow(first.entry, second.entry)
    result = await fetch(first.url(f"/redirect?to={second.url('/ok')}"))
    assert result["text"] == "hello, block" and first.paths == ["/redirect"] and second.paths == ["/ok"]


async def test_a_public_host_may_redirect_to_a_public_one(start_site, allow, public_stand_in):
    public = await start_site("127.0.0.2")
    allow(public.entry)
    result = await fetch(public.url(f"/redirect?to={public.url('/host')}"))
    assert result["text"] == public.entry and public.paths == ["/redirect", "/host"]


async def test_once_public_a_redirect_chain_stays_public(start_site, allow, public_stand_in):
    private, public = await start_site(), await start_site("127.0.0.2")
    allow(private.entry, public.entry)
    back = private.url("/ok")
    with pytest.raises(BlockError, match=f"refused the redirect to '{back}': '127.0.0.1' is a loopback address"):
        await fetch(private.url(f"/redirect?to={public.url(f'/redirect?to={back}')}"))
    assert private.paths == ["/redirect"] and public.paths == ["/redirect"]


# --- IPv6 forms of IPv4 addresses ---


@pytest.mark.parametrize(("host", "refused"), [
    ("2002:a00:1::", "a private address (2002:a00:1::, the 6to4 form of 10.0.0.1)"),
    ("2002:7f00:1::1", "a loopback address (2002:7f00:1::1, the 6to4 form of 127.0.0.1)"),
    ("64:ff9b::a9fe:a9fe", "a link-local address (64:ff9b::a9fe:a9fe, the NAT64 form of 169.254.169.254)"),
    ("64:ff9b::7f00:1", "a loopback address (64:ff9b::7f00:1, the NAT64 form of 127.0.0.1)"),
    ("64:ff9b:1::808:808", "a local-use NAT64 address (64:ff9b:1::808:808)"),
    ("::7f00:1", "a loopback address (::7f00:1, the IPv4-compatible form of 127.0.0.1)"),
    ("::c0a8:101", "a private address (::c0a8:101, the IPv4-compatible form of 192.168.1.1)"),
    ("::ffff:127.0.0.1", "a loopback address (::ffff:7f00:1, the IPv4-mapped form of 127.0.0.1)"),
    ("2001:0:4136:e378:8000:63bf:f5ff:fffe",
     "a private address (2001:0:4136:e378:8000:63bf:f5ff:fffe, the Teredo form of 10.0.0.1)"),
])
@pytest.mark.usefixtures("no_connection")
async def test_ipv6_forms_of_private_ipv4_addresses_are_refused(host, refused, allow):
    allow("*")
    with pytest.raises(BlockError) as caught:
        await fetch(f"http://[{host}]/")
    assert str(caught.value) == (f"http_get: {host!r} is {refused}; "
                                 "only hosts listed exactly in HTTP_GET_ALLOWED_HOSTS may be private")


@pytest.mark.parametrize("address", ["2002:808:808::1", "64:ff9b::808:808", "::ffff:8.8.8.8", "8.8.8.8",
                                     "2606:4700:4700::1111"])
async def test_forms_of_public_addresses_are_public(address):
    assert http_get_module.refusal(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize("address", ["::8.8.8.8", "2001:0:4136:e378:8000:63bf:f7f7:f7f7"])
async def test_deprecated_and_teredo_forms_are_refused_even_for_public_addresses(address):
    assert http_get_module.refusal(ipaddress.ip_address(address)) in {"reserved", "private"}


# --- compressed bodies ---


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_compression_bomb_inflates_no_further_than_the_size_limit(encoding, start_site, allow):
    site = await start_site()
    allow(site.entry, HTTP_GET_MAX_BYTES=100_000)
    assert len(site.bombs[encoding]) < 300_000  # 200 MiB once inflated
    with peak_memory() as peak:
        result = await fetch(site.url(f"/bomb/{encoding}"))
    assert result["truncated"] is True and result["text"] == "A" * 100_000
    assert peak.bytes < 5_000_000, f"{peak.bytes:,} bytes at once"


async def test_a_small_compressed_body_is_decoded(start_site, allow):
    site = await start_site()
    allow(site.entry)
    result = await fetch(site.url("/small-gzip"))
    assert result == {"status": 200, "content_type": "text/plain", "text": "hello, compressed", "truncated": False}


async def test_other_encodings_and_broken_bodies_are_clear_errors(start_site, allow):
    site = await start_site()
    allow(site.entry)
    with pytest.raises(BlockError) as caught:
        await fetch(site.url("/claims/br"))
    assert str(caught.value) == ("http_get: the server sent the body with Content-Encoding 'br', which http_get does "
                                 "not decode (it asks for identity, and decodes gzip and deflate)")
    with pytest.raises(BlockError, match="http_get: cannot decode the compressed body: Error -3"):
        await fetch(site.url("/claims/gzip"))
