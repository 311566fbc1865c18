"""`http_get {url}`: fetches a URL from an allowed host, guarded against server-side request forgery.

Settings (read at call time from `settings.COPILOT`):
- HTTP_GET_ALLOWED_HOSTS: the hosts that may be fetched. An entry allows its scheme's default port (80, 443) only,
  unless it names a port: "api.example.com:8443", "127.0.0.1:9000", "[::1]:8080" allow that port only.
  An exact entry ("api.example.com", "127.0.0.1") is trusted, whatever it resolves to. A wildcard entry
  ("*.example.com" for its subdomains, "*" for any host, "*:8443" for any host on that port) only admits hosts
  whose every address is public: private, loopback, link-local, multicast, reserved and unspecified addresses are
  refused before any connection, also in the IPv6 forms of IPv4 addresses (IPv4-mapped, IPv4-compatible, 6to4,
  NAT64, Teredo), and the connection goes to the address checked (so a second DNS answer cannot swap in another).
- HTTP_GET_TIMEOUT_SECONDS: for the whole fetch, redirects included.
- HTTP_GET_MAX_BYTES: the body is read up to this size, then cut off with `truncated: true`. A body compressed
  although `identity` was asked for is inflated piece by piece up to that size, never further (gzip and deflate;
  other encodings are refused).

Redirects are followed by hand, at most MAX_REDIRECTS of them, each target checked like the first URL. Once a hop
was answered from a public address, every later one must be public too, as if allowed by a wildcard: a public
server cannot send the fetch to a private host, even one listed exactly (listed private hosts may redirect among
themselves). The text is also cut, with `truncated: true`, so that the output fits BLOCK_MAX_OUTPUT_BYTES.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import zlib
from dataclasses import dataclass, field

import httpx

from agents.blocks import Block, BlockError, json_size, max_output_bytes, register
from core.conf import copilot_setting

MAX_REDIRECTS = 3
MAX_URL_CHARS = 2_048
DEFAULT_PORTS = {"http": 80, "https": 443}
PORT = re.compile(r"[0-9]{1,5}")
NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the IPv4 address is the last 32 bits
LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: for local networks only, never public
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
# Content-Encoding -> zlib's wbits: gzip; deflate as the zlib format (a gzip header is accepted too).
INFLATE_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": 32 + zlib.MAX_WBITS}

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Target:
    """Where to connect for a URL: the URL itself, or its checked address with the host name kept aside."""

    url: httpx.URL
    headers: dict[str, str] = field(default_factory=dict)
    extensions: dict[str, str] = field(default_factory=dict)


def parse_url(raw: str) -> httpx.URL:
    try:
        url = httpx.URL(raw)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise BlockError(f"http_get: {raw!r} is not a valid URL: {exc}") from None
    if url.scheme not in {"http", "https"}:
        raise BlockError(f"http_get: only http and https URLs can be fetched, not {raw!r}")
    if not url.host:
        raise BlockError(f"http_get: {raw!r} has no host")
    if url.userinfo:
        raise BlockError("http_get: URLs with a user name or password are not fetched")
    return url


def normal_host(host: str) -> str:
    """A host as entries and URLs are compared: a name in lower case, an IP address in its shortest form."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.lower()


@dataclass(frozen=True)
class AllowedHost:
    """An entry of HTTP_GET_ALLOWED_HOSTS: a host ("*" and "*.example.com" are wildcards) and maybe a port."""

    host: str
    port: int | None  # None: the scheme's default port only

    @property
    def wildcard(self) -> bool:
        return self.host == "*" or self.host.startswith("*.")

    def admits(self, host: str) -> bool:
        return self.host == "*" or host == self.host or (self.host.startswith("*.") and host.endswith(self.host[1:]))

    def port_for(self, scheme: str) -> int:
        return self.port or DEFAULT_PORTS[scheme]


def _is_ipv6(host: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address)
    except ValueError:
        return False


def parse_entry(raw: str) -> AllowedHost:
    """An entry: "host", "host:port", "[IPv6]", "[IPv6]:port", or an IPv6 address without brackets (and port)."""
    entry = raw.strip().lower()
    host, port = entry, None
    if entry.startswith("["):
        host, bracket, rest = entry[1:].partition("]")
        if not bracket or not _is_ipv6(host) or (rest and not rest.startswith(":")):
            host = ""
        port = rest[1:] if rest else None
    elif entry.count(":") == 1:
        host, port = entry.split(":")
    elif ":" in entry and not _is_ipv6(entry):
        host = ""
    if not host or (port is not None and not (PORT.fullmatch(port) and 1 <= int(port) <= 65_535)):
        raise BlockError(f"http_get: the setting HTTP_GET_ALLOWED_HOSTS has a bad entry {raw!r}: write a host, "
                         'maybe with a port, like "api.example.com", "api.example.com:8443" or "[::1]:8080"')
    return AllowedHost(host=normal_host(host), port=int(port) if port is not None else None)


def allowed_hosts() -> list[AllowedHost]:
    hosts = copilot_setting("HTTP_GET_ALLOWED_HOSTS")
    if not isinstance(hosts, list | tuple) or not all(isinstance(host, str) for host in hosts):
        raise BlockError("http_get: the setting HTTP_GET_ALLOWED_HOSTS must be a list of host names")
    return [parse_entry(host) for host in hosts]


def match_url(url: httpx.URL, allowed: list[AllowedHost]) -> str:
    """'exact' or 'wildcard': the kind of entry that allows the URL's host on its port. Raises BlockError if none."""
    names = {normal_host(url.host), url.raw_host.decode("ascii")}  # an international name also in its xn-- form
    port = url.port or DEFAULT_PORTS[url.scheme]
    for_host = [entry for entry in allowed if any(entry.admits(name) for name in names)]
    on_port = [entry for entry in for_host if entry.port_for(url.scheme) == port]
    if any(not entry.wildcard for entry in on_port):
        return "exact"
    if on_port:
        return "wildcard"
    if for_host:
        ports = ", ".join(str(p) for p in sorted({entry.port_for(url.scheme) for entry in for_host}))
        raise BlockError(f"http_get: HTTP_GET_ALLOWED_HOSTS allows {url.host!r} on port {ports} only, not {port} "
                         f"(an entry without a port allows the default port of the URL's scheme; "
                         f"an entry like {url.netloc.decode('ascii')!r} allows another)")
    raise BlockError(f"http_get: the host {url.host!r} is not in HTTP_GET_ALLOWED_HOSTS")


def embedded_ipv4(address: Address) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address an IPv6 address carries, with the name of the form that carries it."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return "IPv4-mapped", address.ipv4_mapped
    if address.sixtofour is not None:
        return "6to4", address.sixtofour
    if address in NAT64:
        return "NAT64", ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    if address.teredo is not None:
        return "Teredo", address.teredo[1]  # the client's address
    if address in IPV4_COMPATIBLE and int(address) > 1:  # not :: or ::1
        return "IPv4-compatible", ipaddress.IPv4Address(int(address))
    return None


def refusal(address: Address) -> str | None:
    """Why an address may not be fetched, or None when it is a public one.

    IPv4-mapped, 6to4 and NAT64 addresses stand for the IPv4 address they carry and are judged by it; IPv4-compatible
    and Teredo ones are refused when it is not public, and judged as IPv6 addresses besides (which refuses them).
    """
    if isinstance(address, ipaddress.IPv6Address) and address in LOCAL_NAT64:
        return "local-use NAT64"
    carried = embedded_ipv4(address)
    if carried is not None:
        form, ipv4 = carried
        reason = refusal(ipv4)
        if reason or form in {"IPv4-mapped", "6to4", "NAT64"}:
            return reason
    for kind in ("unspecified", "loopback", "link_local", "multicast", "reserved", "private"):  # most specific first
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    if not address.is_global:
        return "non-public"
    return None


def refused_address(host: str, address: Address, reason: str) -> str:
    carried = embedded_ipv4(address)
    form = f", the {carried[0]} form of {carried[1]}" if carried else ""
    return f"{host!r} is a {reason} address ({address}{form})"


async def resolve(host: str, port: int) -> list[Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise BlockError(f"http_get: cannot resolve {host!r}: {exc}") from None
    # The scope of a link-local IPv6 address (fe80::1%eth0) is dropped; such addresses are refused anyway.
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not addresses:
        raise BlockError(f"http_get: {host!r} has no address")
    return addresses


async def check(url: httpx.URL, *, public_only: bool = False) -> Target:
    """Refuse a URL that may not be fetched; otherwise say where to connect for it.

    `public_only` (after a hop answered from a public address): every address must be public, even for a host
    listed exactly.
    """
    match = match_url(url, allowed_hosts())
    if match == "exact" and not public_only:
        return Target(url)
    ascii_host = url.raw_host.decode("ascii")  # an international name in its IDNA (xn--) form
    addresses = await resolve(ascii_host, url.port or DEFAULT_PORTS[url.scheme])
    for address in addresses:
        reason = refusal(address)
        if reason:
            rule = ("only hosts listed exactly in HTTP_GET_ALLOWED_HOSTS may be private" if match == "wildcard"
                    else "a redirect from a public address may not lead to a private one, even one listed exactly")
            raise BlockError(f"http_get: {refused_address(url.host, address, reason)}; {rule}")
    # Connect to the address just checked; the Host header and TLS (SNI and certificate) keep the name.
    return Target(url.copy_with(host=str(addresses[0])), headers={"Host": url.netloc.decode("ascii")},
                  extensions={"sni_hostname": ascii_host})


def redirect_target(url: httpx.URL, location: str) -> httpx.URL:
    try:
        return parse_url(str(url.join(location)))
    except httpx.InvalidURL:
        raise BlockError(f"http_get: {str(url)!r} redirects to the invalid URL {location!r}") from None


def answered_from_public_address(response: httpx.Response) -> bool:
    """Whether the server that answered is at a public address (when that cannot be told: yes, the stricter rule)."""
    stream = response.extensions.get("network_stream")
    server = stream.get_extra_info("server_addr") if stream is not None else None
    try:
        return refusal(ipaddress.ip_address(str(server[0]).split("%")[0])) is None
    except (TypeError, IndexError, ValueError):
        return True


def inflater(response: httpx.Response):
    """A zlib decompressor for the body's Content-Encoding, None for identity; BlockError for other encodings."""
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    if encoding in {"", "identity"}:
        return None
    if encoding not in INFLATE_WBITS:
        raise BlockError(f"http_get: the server sent the body with Content-Encoding {encoding!r}, which http_get "
                         "does not decode (it asks for identity, and decodes gzip and deflate)")
    return zlib.decompressobj(INFLATE_WBITS[encoding])


async def read_body(response: httpx.Response, max_bytes: int) -> tuple[bytes, bool]:
    """The body, decoded, up to `max_bytes` (and whether it was cut there).

    Compressed data is inflated at most `max_bytes + 1` bytes at a time, the rest of the input kept for later: a
    small body that inflates to gigabytes (a "zip bomb") takes no more memory than a plain one.
    """
    decompressor = inflater(response)
    body = bytearray()
    async for chunk in response.aiter_raw():
        while chunk:
            if decompressor is None:
                piece, chunk = chunk, b""
            else:
                try:
                    piece = decompressor.decompress(chunk, max_bytes - len(body) + 1)
                except zlib.error as exc:
                    raise BlockError(f"http_get: cannot decode the compressed body: {exc}") from None
                chunk = decompressor.unconsumed_tail
            body += piece
            if len(body) > max_bytes:
                return bytes(body[:max_bytes]), True
    return bytes(body), False


def decode(response: httpx.Response, body: bytes) -> str:
    try:
        return body.decode(response.encoding or "utf-8", errors="replace")
    except LookupError:
        return body.decode("utf-8", errors="replace")


def fitted(result: dict, limit: int) -> dict:
    """The result, its text cut (and `truncated` set) so that it is at most `limit` bytes as JSON."""
    size = json_size(result)
    while size > limit and result["text"]:
        text = result["text"]
        text_size = json_size(text)
        # A character is 1 to 12 bytes of JSON: cut in proportion, and again if that was not enough.
        keep = min(len(text) - 1, max(0, len(text) * (text_size - (size - limit)) // text_size))
        result = {**result, "text": text[:keep], "truncated": True}
        size = json_size(result)
    return result


async def fetch(raw_url: str, *, timeout: float, max_bytes: int) -> dict:
    url = parse_url(raw_url)
    from_public = False  # whether a hop so far was answered from a public address
    # trust_env=False: no proxy from the environment, the connection goes where it was checked to go.
    async with httpx.AsyncClient(follow_redirects=False, timeout=timeout, trust_env=False) as client:
        for redirects in range(MAX_REDIRECTS + 1):
            try:
                target = await check(url, public_only=from_public)
            except BlockError as exc:
                if not redirects:
                    raise
                reason = str(exc).removeprefix("http_get: ")
                raise BlockError(f"http_get: refused the redirect to {str(url)!r}: {reason}") from None
            request = client.build_request("GET", target.url, extensions=target.extensions,
                                           headers={**target.headers, "Accept-Encoding": "identity"})
            response = await client.send(request, stream=True)
            try:
                if response.has_redirect_location:
                    if redirects == MAX_REDIRECTS:
                        raise BlockError(f"http_get: more than {MAX_REDIRECTS} redirects from {raw_url!r}")
                    from_public = from_public or answered_from_public_address(response)
                    url = redirect_target(url, response.headers["Location"])
                    continue
                body, truncated = await read_body(response, max_bytes)
                return fitted({"status": response.status_code,
                               "content_type": response.headers.get("Content-Type", ""),
                               "text": decode(response, body), "truncated": truncated}, max_output_bytes())
            finally:
                await response.aclose()
    raise AssertionError("unreachable")


async def run(block_input: dict) -> dict:
    raw_url = block_input.get("url")
    if not isinstance(raw_url, str) or not raw_url.strip():
        raise BlockError("http_get: url must be a string, like \"https://example.com/\"")
    if len(raw_url) > MAX_URL_CHARS:
        raise BlockError(f"http_get: the URL is longer than {MAX_URL_CHARS} characters")
    timeout = float(copilot_setting("HTTP_GET_TIMEOUT_SECONDS"))
    max_bytes = int(copilot_setting("HTTP_GET_MAX_BYTES"))
    try:
        async with asyncio.timeout(timeout):
            return await fetch(raw_url.strip(), timeout=timeout, max_bytes=max_bytes)
    except (TimeoutError, httpx.TimeoutException):
        raise BlockError(f"http_get: no complete answer from {raw_url!r} within {timeout:g} seconds") from None
    except httpx.HTTPError as exc:
        raise BlockError(f"http_get: cannot fetch {raw_url!r}: {type(exc).__name__}: {exc}") from None


register(Block(
    name="http_get",
    description="Fetch a URL with GET from a host (and port) allowed by the HTTP_GET_ALLOWED_HOSTS setting; "
                "returns the status, content type and text (cut off at HTTP_GET_MAX_BYTES).",
    input_schema={"type": "object", "properties": {"url": {"type": "string", "maxLength": MAX_URL_CHARS,
                                                            "description": "an http(s) URL of an allowed host"}},
                  "required": ["url"]},
    output_schema={"type": "object", "properties": {"status": {"type": "integer"}, "content_type": {"type": "string"},
                                                    "text": {"type": "string"}, "truncated": {"type": "boolean"}}},
    run=run,
))
