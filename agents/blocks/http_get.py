"""`http_get {url}`: fetches a URL from an allowed host, guarded against server-side request forgery.

Settings (read at call time from `settings.COPILOT`):
- HTTP_GET_ALLOWED_HOSTS: the hosts that may be fetched. An exact entry ("api.example.com", "127.0.0.1") is
  trusted, whatever it resolves to. A wildcard entry ("*.example.com" for its subdomains, "*" for any host)
  only admits hosts whose every address is public: private, loopback, link-local, multicast, reserved and
  unspecified addresses are refused before any connection, and the connection goes to the address checked
  (so a second DNS answer cannot swap in another one).
- HTTP_GET_TIMEOUT_SECONDS: for the whole fetch, redirects included.
- HTTP_GET_MAX_BYTES: the body is read up to this size, then cut off with `truncated: true`.

Redirects are followed by hand, at most MAX_REDIRECTS of them, each target checked like the first URL.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass, field

import httpx

from agents.blocks import Block, BlockError, register
from core.conf import copilot_setting

MAX_REDIRECTS = 3
MAX_URL_CHARS = 2_048


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


def allowed_hosts() -> list[str]:
    hosts = copilot_setting("HTTP_GET_ALLOWED_HOSTS")
    if not isinstance(hosts, list | tuple) or not all(isinstance(host, str) for host in hosts):
        raise BlockError("http_get: the setting HTTP_GET_ALLOWED_HOSTS must be a list of host names")
    return [host.strip().lower() for host in hosts]


def match_host(host: str, allowed: list[str]) -> str | None:
    """'exact' for an exact entry, 'wildcard' for a wildcard entry, None when the host is not allowed."""
    host = host.lower()
    if host in allowed:
        return "exact"
    for entry in allowed:
        if entry == "*" or (entry.startswith("*.") and host.endswith(entry[1:])):
            return "wildcard"
    return None


def refusal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why an address may not be fetched, or None when it is a public one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for kind in ("unspecified", "loopback", "link_local", "multicast", "reserved", "private"):  # most specific first
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    if not address.is_global:
        return "non-public"
    return None


async def resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
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


async def check(url: httpx.URL) -> Target:
    """Refuse a URL that may not be fetched; otherwise say where to connect for it."""
    allowed = allowed_hosts()
    ascii_host = url.raw_host.decode("ascii")  # an international name in its IDNA (xn--) form
    match = match_host(url.host, allowed) or match_host(ascii_host, allowed)
    if match is None:
        raise BlockError(f"http_get: the host {url.host!r} is not in HTTP_GET_ALLOWED_HOSTS")
    if match == "exact":
        return Target(url)
    addresses = await resolve(ascii_host, url.port or (443 if url.scheme == "https" else 80))
    for address in addresses:
        reason = refusal(address)
        if reason:
            raise BlockError(f"http_get: {url.host!r} is a {reason} address ({address}); "
                             "only hosts listed exactly in HTTP_GET_ALLOWED_HOSTS may be private")
    # Connect to the address just checked; the Host header and TLS (SNI and certificate) keep the name.
    return Target(url.copy_with(host=str(addresses[0])), headers={"Host": url.netloc.decode("ascii")},
                  extensions={"sni_hostname": ascii_host})


def redirect_target(url: httpx.URL, location: str) -> httpx.URL:
    try:
        return parse_url(str(url.join(location)))
    except httpx.InvalidURL:
        raise BlockError(f"http_get: {str(url)!r} redirects to the invalid URL {location!r}") from None


async def read_body(response: httpx.Response, max_bytes: int) -> tuple[bytes, bool]:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > max_bytes:
            return bytes(body[:max_bytes]), True
    return bytes(body), False


def decode(response: httpx.Response, body: bytes) -> str:
    try:
        return body.decode(response.encoding or "utf-8", errors="replace")
    except LookupError:
        return body.decode("utf-8", errors="replace")


async def fetch(raw_url: str, *, timeout: float, max_bytes: int) -> dict:
    url = parse_url(raw_url)
    # trust_env=False: no proxy from the environment, the connection goes where it was checked to go.
    async with httpx.AsyncClient(follow_redirects=False, timeout=timeout, trust_env=False) as client:
        for redirects in range(MAX_REDIRECTS + 1):
            try:
                target = await check(url)
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
                    url = redirect_target(url, response.headers["Location"])
                    continue
                body, truncated = await read_body(response, max_bytes)
                return {"status": response.status_code, "content_type": response.headers.get("Content-Type", ""),
                        "text": decode(response, body), "truncated": truncated}
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
    description="Fetch a URL with GET from a host allowed by the HTTP_GET_ALLOWED_HOSTS setting; "
                "returns the status, content type and text (cut off at HTTP_GET_MAX_BYTES).",
    input_schema={"type": "object", "properties": {"url": {"type": "string", "maxLength": MAX_URL_CHARS}},
                  "required": ["url"]},
    output_schema={"type": "object", "properties": {"status": {"type": "integer"}, "content_type": {"type": "string"},
                                                    "text": {"type": "string"}, "truncated": {"type": "boolean"}}},
    run=run,
))
