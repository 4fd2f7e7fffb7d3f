"""A whole stack's security properties, each checked the way an attacker or a careless operator would
meet it: TLS as a client negotiates it, the allowlist from a host outside it, the session cookie as the
login sets it, the secrets where they could leak (files, Ansible's output, the logs).

Why per kind and why once: what the balancer answers or holds (the metrics allowlist, TLS, the
response headers, the session cookie, the lb host's files and logs) and Ansible's output that made the
stack run it (the switch's, else the lb role's second run) run per balancer. The lb role's second run
(playbooks/balancer.yml changes nothing) runs once, with the first balancer: each kind's idempotence is
its lb_<kind> scenario's idempotence phase, and the later balancers' switches are whole runs of the role
already (their output is read per kind). The app's CSRF binding, the secrets at rest and in the logs of the app, Redis and database
hosts, and site.yml changing nothing on those hosts (read from the switches' runs) run once, last, when
every balancer and every deploy has written its share. The Redis and PostgreSQL network refusals
and the missing-CSRF-token write are in test_stack.py. The secrets are the stack's own group_vars,
never copies of them.
"""

import http.cookiejar
import http.cookies
import json
import os
import re
import shlex
import socket
import ssl
import urllib.request

import pytest

from testlib import (changed_counts, container, fetch, fleet_version, group_vars, host_name, insecure_tls,
                     run_playbook, stack, switch_runs)

HTTP_PORT = stack().http_port
HTTPS_PORT = stack().https_port
LB = host_name("lb1")
# Every balancer host: a switch changes each of them (lb1 and lb2 in the stack's pair).
LB_HOSTS = stack().groups().get("lb", [])
# The balancer's host is scanned per balancer, the others once.
BACKEND_HOSTS = ["app1", "app2", "redis1", "db1"]
APP_HOSTS = ["app1", "app2"]
APP_UNITS = "inventory@*.service"
SECRET_NAMES = ["app_key", "redis_requirepass", "postgresql_app_password", "app_admin_password"]
METRICS_PATHS = ["/health/detailed", "/health/metrics", "/metrics"]
# The same paths spelled otherwise: a balancer matching the raw path would let them through.
METRICS_PATH_VARIANTS = ["//metrics", "/health//metrics", "/%6detrics", "/health/%6detrics", "/metrics/"]
# TLS 1.2 suites a strong configuration refuses, each weak in its own way; all offered by OpenSSL 3's
# client at security level 0 (3DES and RC4 are not compiled in any more).
WEAK_TLS12_SUITES = {
    "AES128-SHA": "RSA key exchange, CBC, SHA-1",
    "ECDHE-RSA-AES128-SHA": "CBC with SHA-1",
    "ECDHE-RSA-AES256-SHA384": "CBC with SHA-384",
    "AES128-GCM-SHA256": "RSA key exchange, no forward secrecy",
    "DHE-RSA-AES128-GCM-SHA256": "finite-field Diffie-Hellman",
}
# What a server alert looks like in Python's ssl (the reason of the client's SSLError).
SERVER_ALERT = re.compile(r"^(SSLV3|TLSV1)_ALERT_")

VARS = group_vars()
SECRETS = {name: VARS[name] for name in SECRET_NAMES}
ADMIN = {"username": VARS.get("app_admin_username", "admin"), "password": VARS["app_admin_password"]}


def lab_host(name: str):
    return container(host_name(name))


def leaked(text: str) -> list[str]:
    """The names of the secrets whose values appear in `text`."""
    return [name for name, value in SECRETS.items() if value in text]


def grep_secrets() -> str:
    """grep's arguments that match any secret value, for a shell command line."""
    return " ".join(f"-e {shlex.quote(value)}" for value in SECRETS.values())


def test_the_scenario_has_every_secret_set():
    """The leak checks below look for these values: an empty one would match everywhere or nowhere."""
    assert all(isinstance(value, str) and len(value) >= 8 for value in SECRETS.values()), sorted(SECRETS)


# --- Metrics and detailed health: only the allowlist, through the balancer ---------------------------

# Each URL of argv, one line each: the HTTP status (0 with no answer) and the app instance that answered
# ('-' when the balancer answered itself). Certificates are not checked.
PROBE = (
    "import ssl, sys, urllib.request, urllib.error\n"
    "for url in sys.argv[1:]:\n"
    "    try:\n"
    "        response = urllib.request.urlopen(url, timeout=5, context=ssl._create_unverified_context())\n"
    "    except urllib.error.HTTPError as e:\n"
    "        response = e\n"
    "    except OSError:\n"
    "        print(0, '-'); continue\n"
    "    print(response.status, response.headers.get('X-Instance', '-'))\n"
)
SCHEMES = ["http", "https"]
# What each test below asks, by client host: an app host (outside the allowlist) and the balancer's own.
FROM_OUTSIDE = [f"{scheme}://{LB}/health/readiness" for scheme in SCHEMES] + [
    f"{scheme}://{LB}{path}" for scheme in SCHEMES for path in METRICS_PATHS] + [
    f"https://{LB}{path}" for path in METRICS_PATH_VARIANTS]
FROM_INSIDE = [f"{scheme}://127.0.0.1{path}" for scheme in SCHEMES for path in METRICS_PATHS]


@pytest.fixture(scope="module")
def answers(balancer) -> dict[tuple[str, str], tuple[int, str]]:
    """(client host, URL) to (HTTP status, instance) for every request the allowlist tests make: one exec
    per client host, each request in turn."""
    found = {}
    for client, urls in (("app1", FROM_OUTSIDE), ("lb1", FROM_INSIDE)):
        lines = lab_host(client).check_output("python3 -c %s " + " ".join(["%s"] * len(urls)), PROBE, *urls)
        for url, line in zip(urls, lines.splitlines(), strict=True):
            status, instance = line.split()
            found[(client, url)] = (int(status), instance)
    return found


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("path", METRICS_PATHS)
def test_metrics_are_refused_outside_the_allowlist(answers, scheme, path):
    """An app host is outside the balancer's allowlist: the balancer itself refuses (the app, which refuses
    such clients too, never sees the request), while other paths reach the app."""
    assert answers[("app1", f"{scheme}://{LB}/health/readiness")][0] == 200
    assert answers[("app1", f"{scheme}://{LB}{path}")] == (403, "-")


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("path", METRICS_PATHS)
def test_metrics_answer_inside_the_allowlist(answers, scheme, path):
    """The balancer host itself (127.0.0.1) is allowlisted: the same paths reach the app and answer."""
    status, instance = answers[("lb1", f"{scheme}://127.0.0.1{path}")]
    assert status == 200 and instance != "-"


@pytest.mark.parametrize("path", METRICS_PATH_VARIANTS)
def test_metrics_are_not_reached_by_another_spelling_of_the_path(answers, path):
    assert answers[("app1", f"https://{LB}{path}")][0] != 200


# --- TLS: 1.2 and later, ECDHE with AEAD ciphers only --------------------------------------------------

def tls_client(version: ssl.TLSVersion, ciphers: str = "ALL") -> ssl.SSLContext:
    """A client offering exactly `version` and `ciphers`, at OpenSSL security level 0 so that it can offer
    what a strong server must refuse."""
    context = insecure_tls()
    context.minimum_version = version
    context.maximum_version = version
    context.set_ciphers(f"{ciphers}:@SECLEVEL=0")
    return context


def handshake(context: ssl.SSLContext) -> tuple[str, str]:
    """(protocol, cipher) of a handshake with the balancer's published HTTPS port."""
    with socket.create_connection(("127.0.0.1", HTTPS_PORT), timeout=5) as raw:
        with context.wrap_socket(raw) as tls:
            return tls.version(), tls.cipher()[0]


def refusal(context: ssl.SSLContext) -> str:
    """The alert with which the server refused the handshake. A handshake that succeeds fails the test;
    one the client could not even start is raised, since it says nothing about the server."""
    try:
        protocol, cipher = handshake(context)
    except ssl.SSLError as error:
        if SERVER_ALERT.match(error.reason or ""):
            return error.reason
        raise
    pytest.fail(f"the balancer accepted {protocol} with {cipher}")


def is_ecdhe_aead(cipher: dict) -> bool:
    return cipher["kea"] == "kx-ecdhe" and cipher["aead"]


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1], ids=["TLSv1.0", "TLSv1.1"])
def test_tls_before_1_2_is_refused(balancer, version):
    """Refused for the protocol itself, not only for want of a shared cipher."""
    assert refusal(tls_client(version)) == "TLSV1_ALERT_PROTOCOL_VERSION"


@pytest.mark.parametrize("suite", sorted(WEAK_TLS12_SUITES), ids=lambda suite: f"{suite} ({WEAK_TLS12_SUITES[suite]})")
def test_tls_1_2_refuses_a_weak_cipher(balancer, suite):
    assert refusal(tls_client(ssl.TLSVersion.TLSv1_2, suite))


def test_tls_1_2_accepts_only_ecdhe_aead_ciphers(balancer):
    """Every TLS 1.2 suite the client can offer, one at a time: the balancer takes only ECDHE with AEAD."""
    offered = [cipher for cipher in tls_client(ssl.TLSVersion.TLSv1_2).get_ciphers() if cipher["protocol"] != "TLSv1.3"]
    accepted = []
    for cipher in offered:
        try:
            handshake(tls_client(ssl.TLSVersion.TLSv1_2, cipher["name"]))
        except ssl.SSLError:
            # Refused by the balancer, or a suite the client cannot offer alone (PSK, SRP).
            continue
        accepted.append(cipher)
    assert accepted, f"no TLS 1.2 suite of {len(offered)} offered was accepted"
    assert [cipher["name"] for cipher in accepted if not is_ecdhe_aead(cipher)] == []


def test_a_default_tls_1_2_client_negotiates_an_ecdhe_aead_cipher(balancer):
    context = insecure_tls()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    protocol, cipher = handshake(context)
    assert protocol == "TLSv1.2"
    assert [is_ecdhe_aead(c) for c in context.get_ciphers() if c["name"] == cipher] == [True], cipher


# --- Response headers and the session cookie ----------------------------------------------------------

@pytest.mark.parametrize("path", ["/health/liveness", "/lb-health", "/no-such-page", "/metrics"],
                         ids=["app", "balancer", "not-found", "allowlisted-or-refused"])
def test_https_responses_carry_the_security_headers(balancer, path):
    """On the app's answers and on the balancer's own, over HTTPS where HSTS applies."""
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=insecure_tls()))
    _, headers, _ = fetch(opener, f"https://127.0.0.1:{HTTPS_PORT}{path}")
    hsts = re.search(r"max-age=(\d+)", headers.get("Strict-Transport-Security", ""))
    assert hsts and int(hsts.group(1)) >= 180 * 86400, headers.get("Strict-Transport-Security")
    assert headers.get("X-Content-Type-Options") == "nosniff"
    assert headers.get("X-Frame-Options") == "DENY" or "frame-ancestors 'none'" in headers.get(
        "Content-Security-Policy", "")
    assert headers.get("Content-Security-Policy")


@pytest.mark.parametrize("scheme", ["https", "http"])
def test_the_session_cookie_is_secure_httponly_and_samesite(balancer, scheme):
    port = HTTPS_PORT if scheme == "https" else HTTP_PORT
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=insecure_tls()))
    status, headers, body = fetch(opener, f"{scheme}://127.0.0.1:{port}/auth/login", ADMIN)
    assert status == 200, body
    set_cookies = headers.get_all("Set-Cookie") or []
    assert len(set_cookies) == 1, set_cookies
    [(name, cookie)] = http.cookies.SimpleCookie(set_cookies[0]).items()
    assert cookie["secure"] is True, set_cookies[0]
    assert cookie["httponly"] is True, set_cookies[0]
    assert cookie["samesite"].lower() in ("lax", "strict"), set_cookies[0]


def login() -> tuple[urllib.request.OpenerDirector, str]:
    """A client with a session of its own (cookie jar) and that session's CSRF token."""
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=insecure_tls()),
                                         urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    status, _, body = fetch(opener, f"https://127.0.0.1:{HTTPS_PORT}/auth/login", ADMIN)
    assert status == 200, body
    return opener, json.loads(body)["csrf_token"]


def test_a_write_with_another_sessions_csrf_token_is_refused():
    """The token is bound to its session: an attacker's own valid token does not open the victim's.
    (The service has no Origin check: the token is its CSRF defence.)"""
    victim, victim_token = login()
    _, attacker_token = login()
    assert attacker_token != victim_token
    item = {"sku": f"CSRF-{os.getpid()}", "name": "x", "quantity": 1, "location": "A1", "unit_price": "1.00"}
    status, _, body = fetch(victim, f"https://127.0.0.1:{HTTPS_PORT}/items", item, {"X-CSRF-Token": attacker_token})
    assert status == 403, body


# --- Secrets at rest -----------------------------------------------------------------------------------

def app_environment_files(host) -> list[str]:
    """The environment files systemd reads for the app's instances (EnvironmentFiles= of each unit), each
    where its links lead: the config link's target, and every config staged beside it."""
    units = host.check_output(f"systemctl list-units --plain --no-legend --all '{APP_UNITS}'").split()
    listed = [word for word in units if word.endswith(".service")]
    assert listed, "no app instance unit"
    files = set()
    for unit in listed:
        for line in host.check_output(f"systemctl show --property=EnvironmentFiles --value {unit}").splitlines():
            files.add(host.check_output("readlink -f %s", line.split(" (")[0]))
    staged = host.check_output("find /etc/inventory/configs -type f").split()
    assert staged, "no config staged under /etc/inventory/configs"
    return sorted(files | set(staged))


def closed_to_others(host, path: str) -> None:
    """No access for other users and no writing by the group, by the mode and in fact: an unprivileged
    user cannot read it."""
    mode = host.file(path).mode
    assert mode & 0o027 == 0, f"{path} has mode {oct(mode)}"
    attempt = host.run("runuser -u nobody -- cat %s", path)
    assert attempt.rc != 0 and "Permission denied" in attempt.stderr, f"nobody reads {path}: {attempt.stderr}"


@pytest.mark.parametrize("name", APP_HOSTS)
def test_the_app_environment_files_holding_secrets_are_closed_to_others(name):
    host = lab_host(name)
    files = app_environment_files(host)
    holding = [path for path in files if leaked(host.file(path).content_string)]
    assert holding, f"none of {files} holds the app's secrets"
    for path in holding:
        closed_to_others(host, path)
        # Only root writes it: the service's user could otherwise change its own settings.
        assert host.file(path).user == "root"


def files_holding(host, directory: str, secret: str) -> list[str]:
    return host.check_output("grep -rlF -e %s %s || true", secret, directory).split()


def test_the_redis_configuration_holding_the_password_is_closed_to_others():
    host = lab_host("redis1")
    holding = files_holding(host, "/etc/redis", SECRETS["redis_requirepass"])
    assert holding, "no file under /etc/redis holds redis_requirepass"
    for path in holding:
        closed_to_others(host, path)


def test_postgresql_keeps_the_app_password_only_as_a_scram_verifier():
    """No configuration file needs the password: the server holds a SCRAM verifier, not the password."""
    host = lab_host("db1")
    assert files_holding(host, "/etc/postgresql", SECRETS["postgresql_app_password"]) == []
    verifier = host.check_output(
        "runuser -u postgres -- psql -XtAc %s",
        f"select rolpassword from pg_authid where rolname = '{VARS.get('postgresql_app_user', 'inventory')}'")
    assert verifier.startswith("SCRAM-SHA-256$"), verifier[:14]


def world_readable_files_holding_a_secret(name: str) -> list[str]:
    """Anywhere a service or an operator writes, not only where the roles mean to: a stray copy, a backup
    left by a template, a log."""
    return lab_host(name).check_output(
        "find /etc /opt /srv /var /run /tmp /root /home -xdev -type f -perm -o=r -size -20M -print0 2>/dev/null"
        f" | xargs -0 -r grep -lF {grep_secrets()} || true").split()


def test_no_file_readable_by_everyone_on_the_balancer_host_holds_a_secret(balancer):
    assert world_readable_files_holding_a_secret("lb1") == []


@pytest.mark.parametrize("name", BACKEND_HOSTS)
def test_no_file_readable_by_everyone_holds_a_secret(name):
    assert world_readable_files_holding_a_secret(name) == []


# --- Secrets in Ansible's output and in the logs ------------------------------------------------------

@pytest.fixture(scope="module")
def balancer_run():
    """playbooks/balancer.yml once more against the converged stack, verbosely (-v shows every task's
    result): the lb role with the balancer the stack runs, from the inventory as it is."""
    return run_playbook("playbooks/balancer.yml", {}, verbosity=1)


@pytest.mark.once_with_balancer(0)
def test_the_balancer_converges_again_verbosely_and_changes_nothing(balancer_run):
    """The idempotence check of the lb role on the stack (the stack scenario has no idempotence phase of its
    own), with the balancer it was converged with: the only play that depends on the balancer, 19-48 s where
    a whole site.yml takes 70-96 s. Each kind's is also its lb_<kind> scenario's idempotence phase. The
    other hosts' roles do not read lb_kind; site.yml changing nothing on them is checked once, below."""
    assert balancer_run.returncode == 0, balancer_run.stdout[-4000:] + balancer_run.stderr[-2000:]
    assert "TASK [lb : " in balancer_run.stdout
    changed = changed_counts(balancer_run.stdout)
    assert LB in changed and set(changed.values()) == {0}, (changed, balancer_run.stdout[-6000:])


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_no_secret_in_ansible_output(balancer, stream, request):
    """In the output of the switch that made the stack run this balancer, verbose (-v); for the balancer the
    stack started with, in the lb role's second run."""
    run = balancer.switch if balancer.switch is not None else request.getfixturevalue("balancer_run")
    assert leaked(getattr(run, stream)) == []


@pytest.fixture(scope="module")
def site_runs():
    """Every whole site.yml run on the converged stack in this session: the switches from one balancer to
    the next that went through site.yml (each -v; conftest.py); when there was none (the lab, already on its
    balancer), site.yml once more now."""
    runs = [run for playbook, run in switch_runs() if playbook == "site.yml"]
    if runs:
        return runs, True
    return [run_playbook("site.yml", {"app_version": fleet_version()}, verbosity=1)], False


def test_site_converges_again_and_changes_nothing_but_the_balancer_it_switches(site_runs):
    """A whole site.yml on a converged stack changes nothing on the app, Redis and database hosts, even
    as it switches the balancer; without a switch, nothing on the balancers' hosts either."""
    runs, switched = site_runs
    for run in runs:
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
        changed = changed_counts(run.stdout)
        assert set(changed) >= {host_name(name) for name in BACKEND_HOSTS}, changed
        unchanged = {host: count for host, count in changed.items() if not (switched and host in LB_HOSTS)}
        assert set(unchanged.values()) == {0}, (changed, run.stdout[-6000:])
        # The rolling path's restarts are the balancer host's tasks: not one instance restarted.
        assert "instance(s) restart, in" not in run.stdout, run.stdout[-6000:]


def test_no_secret_in_the_output_of_a_whole_site_run(site_runs):
    runs, _ = site_runs
    assert [leaked(run.stdout + run.stderr) for run in runs] == [[] for _ in runs]


@pytest.mark.parametrize("name", APP_HOSTS)
def test_no_secret_in_the_app_journal(name):
    journal = lab_host(name).check_output(f"journalctl --no-pager --output=cat --unit '{APP_UNITS}'")
    assert journal.strip(), "the app's units logged nothing: the check would see nothing"
    assert leaked(journal) == []


def logs_holding_a_secret(name: str) -> tuple[list[str], list[str]]:
    """The secrets in the whole journal (Ansible's modules log their arguments there), and the files under
    /var/log that hold one."""
    host = lab_host(name)
    return (leaked(host.check_output("journalctl --no-pager --output=cat")),
            host.check_output(f"grep -rlaF {grep_secrets()} /var/log || true").split())


def test_the_secret_scans_find_a_planted_copy_of_every_secret():
    """The positive control of the scans above, whose shell pipelines end in `|| true` (grep exits 1 when it
    finds nothing): a copy of each secret, planted where each scan looks, is found by each, so an empty
    answer above means no secret and not a scan that failed (a quoting slip, a wrong path)."""
    host = lab_host("db1")
    planted = {name: (f"/var/tmp/rollgate-canary-{name}", f"/var/log/rollgate-canary-{name}.log") for name in SECRETS}
    try:
        for name, paths in planted.items():
            for path in paths:
                host.check_output(f"printf '%s\\n' {shlex.quote(SECRETS[name])} > {path} && chmod 0644 {path}")
        found = world_readable_files_holding_a_secret("db1")
        _, logs = logs_holding_a_secret("db1")
        for name, (spare, log) in planted.items():
            assert spare in found, (name, found)
            assert log in logs, (name, logs)
            assert files_holding(host, "/var/tmp", SECRETS[name]) == [spare], name
    finally:
        host.run("rm -f " + " ".join(path for paths in planted.values() for path in paths))


def test_no_secret_in_any_log_of_the_balancer_host(balancer):
    assert logs_holding_a_secret("lb1") == ([], [])


@pytest.mark.parametrize("name", BACKEND_HOSTS)
def test_no_secret_in_any_log(name):
    assert logs_holding_a_secret(name) == ([], [])
