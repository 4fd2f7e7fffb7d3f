#!/usr/bin/env python3
"""This host's IPv4 addresses, by interface, and the interface of its default route, as JSON:

    {"default": "eth0", "interfaces": {"eth0": [{"address": "10.0.0.5", "prefix": 24, "secondary": false}]}}

Read from the kernel (netlink's address dump, /proc/net/route), so it needs neither iproute2 (a minimal
Debian has none) nor Ansible's facts (a fact subset read early would stand for the whole set later).
Standard library only: the lb role runs it with the host's python3 (tasks/vip_addresses.yml).
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys

RTM_GETADDR = 22
RTM_NEWADDR = 20
NLMSG_DONE = 3
NLMSG_ERROR = 2
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_LABEL = 3
IFA_F_SECONDARY = 0x01
NLMSG_HEADER = struct.Struct("=IHHII")  # length, type, flags, sequence, port
IFADDRMSG = struct.Struct("=BBBBI")  # family, prefix length, flags, scope, interface index
RTATTR = struct.Struct("=HH")  # length, type


def _align(length: int) -> int:
    return (length + 3) & ~3


def parse_addresses(data: bytes, names: dict[int, str]) -> tuple[list[dict], bool]:
    """The IPv4 addresses in one read of a netlink RTM_GETADDR dump, and whether the dump is done.
    ``names``: interface index to name. The local address (IFA_LOCAL) is the host's own; IFA_ADDRESS is
    the peer's on a point-to-point link, so it counts only when IFA_LOCAL is absent."""
    found, offset, done = [], 0, False
    while offset + NLMSG_HEADER.size <= len(data):
        length, kind, _, _, _ = NLMSG_HEADER.unpack_from(data, offset)
        if length < NLMSG_HEADER.size:
            break
        if kind == NLMSG_DONE:
            done = True
        elif kind == NLMSG_ERROR:
            (code,) = struct.unpack_from("=i", data, offset + NLMSG_HEADER.size)
            raise OSError(-code, f"netlink address dump failed: {os.strerror(-code)}")
        elif kind == RTM_NEWADDR:
            body = offset + NLMSG_HEADER.size
            family, prefix, flags, _, index = IFADDRMSG.unpack_from(data, body)
            attributes: dict[int, bytes] = {}
            position = body + IFADDRMSG.size
            while position + RTATTR.size <= offset + length:
                size, attribute = RTATTR.unpack_from(data, position)
                if size < RTATTR.size:
                    break
                attributes[attribute] = data[position + RTATTR.size:position + size]
                position += _align(size)
            raw = attributes.get(IFA_LOCAL) or attributes.get(IFA_ADDRESS)
            if family == socket.AF_INET and raw and len(raw) == 4:
                label = attributes.get(IFA_LABEL, b"").split(b"\0")[0].decode() or names.get(index, str(index))
                found.append({"interface": names.get(index, label), "address": socket.inet_ntoa(raw),
                              "prefix": prefix, "secondary": bool(flags & IFA_F_SECONDARY)})
        offset += _align(length)
    return found, done


def read_addresses() -> list[dict]:
    """Every IPv4 address of the host, through a netlink dump."""
    names = {index: name for index, name in socket.if_nameindex()}
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        request = NLMSG_HEADER.pack(NLMSG_HEADER.size + IFADDRMSG.size, RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, 1, 0)
        sock.send(request + IFADDRMSG.pack(socket.AF_INET, 0, 0, 0, 0))
        addresses: list[dict] = []
        while True:
            found, done = parse_addresses(sock.recv(65536), names)
            addresses += found
            if done:
                return addresses


def default_interface(route_table: str) -> str:
    """The interface of the IPv4 default route in /proc/net/route's text, the first one; "" when none."""
    for line in route_table.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and fields[1] == "00000000" and fields[7] == "00000000":
            return fields[0]
    return ""


def networks(addresses: list[dict], route_table: str) -> dict:
    interfaces: dict[str, list[dict]] = {}
    for entry in addresses:
        interfaces.setdefault(entry["interface"], []).append(
            {"address": entry["address"], "prefix": entry["prefix"], "secondary": entry["secondary"]})
    return {"default": default_interface(route_table), "interfaces": interfaces}


def main() -> int:
    with open("/proc/net/route", encoding="ascii") as stream:
        route_table = stream.read()
    print(json.dumps(networks(read_addresses(), route_table)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
