#!/usr/bin/env python3
"""Run the service's own config validator on the controller, for every app host at once.

    check_config.py IMPORT_PATH < {"app1": {"port": 8000, "env": {"APP_KEY": ...}}, ...}

IMPORT_PATH holds the package inventory_service: the release's wheel (a zip Python imports from) or
the source's src directory. Prints {"app1": ["DB_POOL_MAX must be ...", ...], ...}, one list per host,
empty when the host's environment is valid. The validator is the one each instance runs at start
(inventory_service.config.load_settings); it needs nothing beyond the standard library.
"""

from __future__ import annotations

import json
import sys


def main() -> int:
    sys.path.insert(0, sys.argv[1])
    from inventory_service.config import ConfigError, load_settings  # pylint: disable=import-outside-toplevel

    problems: dict[str, list[str]] = {}
    for host, given in json.load(sys.stdin).items():
        env = {name: str(value) for name, value in given["env"].items()}
        try:
            load_settings(env, int(given["port"]))
            problems[host] = []
        except ConfigError as error:
            problems[host] = list(error.problems)
    json.dump(problems, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
