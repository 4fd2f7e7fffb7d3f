"""Clients for the lb_apache tests: requests from the controller through the published ports, and
Python run inside a container (the hosts have no curl), with its result as JSON."""

import base64
import gzip
import http.client
import json
import os
import ssl
import subprocess
import textwrap
import time
from dataclasses import dataclass, field

import testinfra

from testlib import ansible_env, inventory

HTTP_PORT = 18380
HTTPS_PORT = 18743
LB = "lba-lb1"
APP_HOSTS = ("lba-app1", "lba-app2")
INSTANCES = {f"{host}:{port}" for host in APP_HOSTS for port in (8000, 8001)}
SITE = "/etc/apache2/sites-available/rollgate.conf"
MANAGER = "127.0.0.1:8081"
MANAGER_PYTHON = "/opt/rollgate/lb-python/bin/python3"
SCENARIO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers.items() if key.lower() == name.lower()), None)

    def json(self) -> dict:
        body = gzip.decompress(self.body) if self.header("Content-Encoding") == "gzip" else self.body
        return json.loads(body)


def insecure_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def get(path: str, https: bool = False, headers: dict[str, str] | None = None) -> Reply:
    """One request from the controller through the balancer's published port."""
    if https:
        connection = http.client.HTTPSConnection("127.0.0.1", HTTPS_PORT, timeout=15, context=insecure_context())
    else:
        connection = http.client.HTTPConnection("127.0.0.1", HTTP_PORT, timeout=15)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return Reply(response.status, dict(response.getheaders()), response.read())
    finally:
        connection.close()


def instances_answering(count: int, https: bool = False) -> list[str]:
    return [get("/who", https=https).header("X-Instance") for _ in range(count)]


def container(name: str):
    return testinfra.get_host(f"podman://{name}")


def run_python(name: str, script: str, *args: str) -> dict:
    """Run a Python script inside a container and return what it printed as JSON."""
    encoded = base64.b64encode(textwrap.dedent(script).encode()).decode()
    quoted = " ".join(f"'{arg}'" for arg in args)
    output = container(name).check_output(f"echo {encoded} | base64 -d | python3 - {quoted}")
    return json.loads(output)


FETCH = """
    import json, sys, urllib.request, urllib.error
    try:
        with urllib.request.urlopen(sys.argv[1], timeout=15) as response:
            status, headers, body = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        status, headers, body = error.code, dict(error.headers), error.read()
    print(json.dumps({"status": status, "headers": headers, "body": body.decode(errors="replace")}))
"""


def fetch_inside(name: str, url: str) -> Reply:
    """One request made from inside a container, so from that container's address."""
    result = run_python(name, FETCH, url)
    return Reply(result["status"], result["headers"], result["body"].encode())


def wait_until(predicate, timeout: float = 45, interval: float = 1) -> bool:
    """Poll `predicate` until it is true or `timeout` seconds have passed; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


def converge(extra_vars: dict) -> subprocess.CompletedProcess:
    """Run this scenario's converge playbook again with `extra_vars`."""
    return subprocess.run(
        ["ansible-playbook", "-i", inventory(), os.path.join(SCENARIO_DIR, "converge.yml"),
         "-e", json.dumps(extra_vars)],
        env=ansible_env(), capture_output=True, text=True, timeout=900, check=False,
    )


def balancer_manager(arguments: str) -> dict:
    """Run community.general.apache2_mod_proxy on the balancer host; return its result."""
    environment = ansible_env()
    environment.update(ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="json")
    completed = subprocess.run(
        ["ansible", LB, "-i", inventory(), "-c", "containers.podman.podman",
         "-e", f"ansible_python_interpreter={MANAGER_PYTHON}",
         "-m", "community.general.apache2_mod_proxy", "-a", arguments],
        env=environment, capture_output=True, text=True, timeout=300, check=False,
    )
    output = json.loads(completed.stdout)
    return output["plays"][0]["tasks"][0]["hosts"][LB]
