#!/usr/bin/python3
"""HAProxy's view of its backends, from the runtime API's `show stat`, as JSON {name: {weight, state}}.

Usage: view.py SETTINGS_JSON   ({"socket", "backend"}; the role names each server after its backend)
"""

import json
import socket
import sys


def readable(status: str) -> str:
    """The state as make status words it for every balancer, HAProxy's own status beside it."""
    word = status.split()[0] if status.split() else ""
    if word in ("DRAIN", "MAINT"):
        return f"drained ({status})"
    if word == "UP":
        return f"in rotation ({status})"
    return status


def main() -> None:
    settings = json.loads(sys.argv[1])
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(3)
        connection.connect(settings["socket"])
        connection.sendall(b"show stat\n")
        raw = b""
        while chunk := connection.recv(65536):
            raw += chunk
    lines = raw.decode().splitlines()
    header = lines[0].lstrip("# ").split(",")
    view = {}
    for line in lines[1:]:
        row = dict(zip(header, line.split(",")))
        if row.get("pxname") == settings["backend"] and row.get("svname") not in ("FRONTEND", "BACKEND"):
            view[row["svname"]] = {"weight": row.get("weight", "?"), "state": readable(row.get("status", "?"))}
    print(json.dumps(view))


if __name__ == "__main__":
    main()
