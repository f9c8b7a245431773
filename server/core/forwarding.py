"""Who is at the other end of a request that came through reverse proxies.

Each proxy appends the address it accepted the connection from to X-Forwarded-For, so of
that list only the right-most entries, one per trusted proxy, were written by someone we
trust; everything to their left is whatever the client sent. The client is therefore the
entry `hops` places left of the connection's peer (the nearest proxy), never the first one,
and X-Real-IP is only believed when the operator names it as the header their proxy sets.
The same walk picks the scheme from X-Forwarded-Proto.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Client:
    ip: str
    scheme: str


def forwarded_client(peer_ip: str, peer_scheme: str, headers: Mapping[str, str], *,
                     hops: int, ip_header: str = "") -> Client:
    """The client's address and scheme, given the connection's and `hops` trusted proxies."""
    if hops <= 0:
        return Client(peer_ip, peer_scheme)
    if ip_header and headers.get(ip_header, "").strip():
        candidate = headers[ip_header].strip()
    else:
        candidate = _hop([*_entries(headers.get("X-Forwarded-For", "")), peer_ip], hops)
    schemes = _entries(headers.get("X-Forwarded-Proto", ""))
    scheme = _hop(schemes, hops - 1) if schemes else peer_scheme
    return Client(candidate if _is_ip(candidate) else peer_ip, scheme if scheme in ("http", "https") else peer_scheme)


def _entries(header: str) -> list[str]:
    return [part.strip() for part in header.split(",") if part.strip()]


def _hop(chain: list[str], hops: int) -> str:
    """The entry `hops` places left of the right-most one, or the left-most if the chain is shorter."""
    return chain[max(0, len(chain) - 1 - hops)]


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
