#!/usr/bin/env bash
# The install on a fresh machine: scripts/bootstrap.sh's host step inside a new container made from the
# plain Debian 12 minbase base image (no podman, no iptables, nothing else of this machine), then a
# container started with the podman it installed, on a user-defined network (the path netavark takes).
# This machine cannot show a missing install step: earlier runs left their packages here. This can.
#
# Usage: scripts/test-fresh-machine.sh [BOOTSTRAP]   (default: scripts/bootstrap.sh of this checkout)
# Needs the base image (scripts/bootstrap.sh image). Exits non-zero, with the inner output, on failure.
set -euo pipefail

ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BASE_IMAGE="${ROLLGATE_BASE_IMAGE:-localhost/rollgate-base:bookworm}"
BOOTSTRAP="$(realpath "${1:-${ROOT_DIR}/scripts/bootstrap.sh}")"
LOG="${ROOT_DIR}/.cache/fresh-machine.log"

say() { printf 'fresh-machine: %s\n' "$*"; }

podman image exists "${BASE_IMAGE}" || { say "no ${BASE_IMAGE}: run 'scripts/bootstrap.sh image' first" >&2; exit 1; }
mkdir -p "$(dirname "${LOG}")"

# Runs inside the fresh container, as root, with the bootstrap under test at /bootstrap.sh.
inner='
set -euo pipefail
# The base image carries openssh-server for the SSH lab, and with it the client: gone, as on a machine without it.
apt-get purge -qq -y openssh-server openssh-client >/dev/null
for tool in podman iptables netavark ssh ssh-keyscan chromium chromedriver; do
    if command -v "$tool" >/dev/null || [ -x "/usr/lib/podman/$tool" ]; then
        echo "fresh-machine: the fresh image already has $tool: it proves nothing" >&2; exit 3
    fi
done
bash /bootstrap.sh host
for tool in ssh ssh-keyscan ssh-keygen chromium chromedriver; do
    command -v "$tool" >/dev/null || { echo "fresh-machine: the host step left no $tool" >&2; exit 4; }
done
# The browser test needs the driver to run, not only to be there.
chromedriver --version
# The smallest image that runs: /bin/true and the libraries it links, as a rootfs (nothing is pulled).
rootfs=$(mktemp -d)
for file in /bin/true $(ldd /bin/true | grep -oE "/[^ ]+"); do
    mkdir -p "$rootfs$(dirname "$file")"; cp -L "$file" "$rootfs$file"
done
# Nested podman on this machine: vfs storage, runc, cgroupfs (ENVIRONMENT.md); the network is the real path.
flags="--storage-driver vfs --runtime runc --cgroup-manager cgroupfs"
tar -C "$rootfs" -c . | podman $flags import --quiet - localhost/fresh-true:1 >/dev/null
podman $flags network create fresh-net >/dev/null
podman $flags run --rm --network fresh-net localhost/fresh-true:1 /bin/true
echo "fresh-machine: a container ran on a user-defined network"
'

started=$(date +%s)
say "bootstrap host step in a fresh ${BASE_IMAGE} container, then a nested container on its own network"
# Its own network namespace (podman's default network), never the machine's: the nested podman makes a
# network, and netavark writes firewall rules wherever it runs.
# ROLLGATE_CONTAINER_CPU_SHARES: its share of the CPU beside other containers (scripts/run-molecule.sh sets it).
if podman run --rm --privileged ${ROLLGATE_CONTAINER_CPU_SHARES:+--cpu-shares "$ROLLGATE_CONTAINER_CPU_SHARES"} \
        -v "${BOOTSTRAP}:/bootstrap.sh:ro" "${BASE_IMAGE}" \
        bash -c "${inner}" >"${LOG}" 2>&1; then
    say "passed in $(( $(date +%s) - started )) s (log: ${LOG#"${ROOT_DIR}/"})"
else
    status=$?
    tail -n 30 "${LOG}" >&2
    say "FAILED (exit ${status}) in $(( $(date +%s) - started )) s: the bootstrap's host step does not give the ssh client and a podman that runs a container on a fresh Debian 12 (log: ${LOG#"${ROOT_DIR}/"})" >&2
    exit 1
fi
