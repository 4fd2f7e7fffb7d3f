"""The console script: ``inventory-service --port 8001`` (one process per port)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

import uvicorn

from .app import create_app
from .config import ConfigError, load_settings, package_version
from .runtime import Lifecycle
from .server import DrainingServer

EXIT_CONFIG = 78  # EX_CONFIG: systemd shows it as a configuration error


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="inventory-service", description="rollgate's reference inventory service")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default: %(default)s)")
    parser.add_argument("--check-config", action="store_true",
                        help="validate the environment and exit (0 when valid)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    args = parser.parse_args(argv)
    if not 1 <= args.port <= 65535:
        parser.error(f"--port must be from 1 to 65535, got {args.port}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings(os.environ, args.port)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"inventory-service: configuration error: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    if args.check_config:
        print(f"inventory-service: configuration valid ({settings.app_env}, version {settings.app_version})")
        return 0

    logging.basicConfig(level=settings.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    lifecycle = Lifecycle()
    config = uvicorn.Config(
        create_app(settings, lifecycle), host=args.host, port=args.port, workers=1,
        loop="uvloop", http="httptools", lifespan="on",
        # uvicorn hints int but waits with asyncio.wait_for, which takes any number of seconds.
        timeout_graceful_shutdown=settings.drain_timeout,  # type: ignore[arg-type]
        # Client addresses (rate limit, health allowlist) come from X-Forwarded-For only when the peer
        # is in FORWARDED_ALLOW_IPS (uvicorn's variable; default 127.0.0.1).
        proxy_headers=True,
        access_log=settings.access_log, log_level=settings.log_level, log_config=None,
        server_header=False, timeout_keep_alive=5,
    )
    DrainingServer(config, lifecycle, settings.drain_delay).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
