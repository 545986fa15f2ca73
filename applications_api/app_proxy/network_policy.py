"""Which upstream addresses the proxy may connect to."""

import ipaddress
import socket
from collections.abc import Iterable


class DeniedAddress(Exception):
    """The upstream host is, or resolves to, an address in a denied network."""


def approved_address(
    host: str,
    port: int,
    denied_networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network],
    own_addresses: Iterable[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, int]] = (),
) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """Resolve `host` and return the address to connect to, refusing the host when any
    of its addresses is in a denied network, or is where this service itself listens
    (`own_addresses`: (network, port) pairs).

    Every address is checked, not only the first, since a client may use any. The
    nginx transfer connects to the returned address itself, so what was checked is
    what is reached (no second lookup for DNS rebinding to slip into).
    Raises DeniedAddress, or OSError when the name does not resolve.
    """
    addresses = []
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        # (an IPv4 or IPv6 sockaddr: its first item is the address, as a string; an
        # IPv6 one may end in a zone id, "%eth0")
        address = ipaddress.ip_address(str(sockaddr[0]).partition("%")[0])
        if address.version == 6 and address.ipv4_mapped:
            address = address.ipv4_mapped
        if any(address in network for network in denied_networks):
            raise DeniedAddress(f"{host} resolves to {address}, in a denied network")
        if any(address in network and port == own for network, own in own_addresses):
            raise DeniedAddress(f"{host}:{port} is where this service listens")
        addresses.append(address)
    return addresses[0]
