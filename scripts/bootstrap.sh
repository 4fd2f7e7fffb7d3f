#!/usr/bin/env bash
# Prepare this machine to run the rollgate lab: host packages, the controller venv,
# the lab base image (built with debootstrap, cached by recipe) and a podman that can
# start systemd containers. Safe to run again: every step checks before it acts.
#
# Usage: scripts/bootstrap.sh [venv|host|image|podman|all]   (default: all)
set -euo pipefail

ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV_DIR="${ROOT_DIR}/.venv"
# One lab base image per Debian release the lab runs: localhost/rollgate-base:<suite>. Debian 12 is every host's
# by default; a lab (or the molecule stack) puts hosts on Debian 13 with the trixie image.
BASE_SUITES=(bookworm trixie)
BASE_IMAGE_PREFIX="localhost/rollgate-base"
# openssh-server: the SSH lab (make up LAB_CONNECTION=ssh) starts it; other containers leave it off.
BASE_PACKAGES="python3,python3-apt,systemd,systemd-sysv,iproute2,procps,sudo,ca-certificates,openssh-server"
# podman and what it needs at run time: --no-install-recommends leaves out iptables, which netavark (podman's
# network stack) calls for every container ("netavark: No such file or directory" without it).
# openssh-client: ssh, ssh-keyscan and ssh-keygen, with which the SSH lab and make test's stack reach their hosts.
# chromium and chromium-driver: the real browser of the dashboard's test (never one Selenium downloads).
HOST_PACKAGES=(podman runc debootstrap iptables uidmap slirp4netns netavark aardvark-dns conmon fuse-overlayfs
               openssh-client chromium chromium-driver)
DROPIN_DIR="/etc/containers/containers.conf.d"
DROPIN_FILE="${DROPIN_DIR}/50-rollgate-lab.conf"

say() { printf 'bootstrap: %s\n' "$*"; }
die() { printf 'bootstrap: ERROR: %s\n' "$*" >&2; exit 1; }

require_root() {
    [[ "$(id -u)" == "0" ]] || die "this needs root (it installs packages and runs podman as root): run it again as root, e.g. 'sudo make up'."
    command -v apt-get >/dev/null || die "apt-get not found: the lab is made for Debian 12 (bookworm) machines."
}

apt_updated=""
apt_install() {
    if [[ -z "${apt_updated}" ]]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        apt_updated=1
    fi
    say "installing $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_host_packages() {
    local missing=()
    for pkg in "${HOST_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "${pkg}" 2>/dev/null | grep -q "install ok installed" || missing+=("${pkg}")
    done
    # Each package is checked on its own, so a machine that has podman but lacks one of its run-time
    # packages gets it too.
    if ((${#missing[@]})); then
        apt_install "${missing[@]}"
    fi
}

ensure_venv() {
    local stamp="${VENV_DIR}/.requirements.sha256"
    local want
    want="$(sha256sum "${ROOT_DIR}/requirements.txt" | cut -d' ' -f1)"
    if [[ -x "${VENV_DIR}/bin/python" && -f "${stamp}" && "$(cat "${stamp}")" == "${want}" ]]; then
        return 0
    fi
    command -v python3 >/dev/null || apt_install python3 python3-venv
    python3 -m venv "${VENV_DIR}" 2>/dev/null || { apt_install python3-venv; python3 -m venv "${VENV_DIR}"; }
    say "installing the pinned toolchain into .venv (about 15 s)"
    "${VENV_DIR}/bin/pip" install -q --disable-pip-version-check --upgrade pip
    # --no-compile: no .pyc for the thousands of modules of ansible's collections that nothing imports;
    # Python compiles what is imported on first use. 14 s instead of 41 s on this machine.
    "${VENV_DIR}/bin/pip" install -q --no-compile --disable-pip-version-check -r "${ROOT_DIR}/requirements.txt"
    echo "${want}" >"${stamp}"
}

# The Debian mirror that apt on this machine already uses (never hard-coded): the URI that serves this
# machine's own release, which serves every other release too (trixie from a bookworm machine's).
debian_mirror() {
    local codename uri=""
    codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
    if compgen -G "/etc/apt/sources.list.d/*.sources" >/dev/null; then
        uri="$(awk '
            /^URIs:/ { uris=$2 }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "'"${codename}"'") found=uris }
            /^$/ { if (found != "") { print found; exit } }
            END { if (found != "") print found }' /etc/apt/sources.list.d/*.sources | head -n1)"
    fi
    if [[ -z "${uri}" && -f /etc/apt/sources.list ]]; then
        uri="$(awk '$1 == "deb" && $3 == "'"${codename}"'" { print $2; exit }' /etc/apt/sources.list)"
    fi
    [[ -n "${uri}" ]] || die "could not find the Debian mirror of this machine's release (${codename:-unknown}) in /etc/apt/sources.list*: add one, or set ROLLGATE_DEBIAN_MIRROR."
    echo "${uri}"
}

recipe_hash() {
    local suite="$1"
    printf '%s\n' "${suite}" "${BASE_PACKAGES}" "minbase" "v4" | sha256sum | cut -c1-16
}

# sshd as on a hardened server (keys only, no root login), off until the SSH lab starts it. The image
# carries no host keys: each container makes its own when sshd first starts, so no two hosts share one.
prepare_sshd() {
    local rootfs="$1"
    chroot "${rootfs}" systemctl disable --quiet ssh.service >/dev/null 2>&1 || true
    rm -f "${rootfs}"/etc/ssh/ssh_host_*
    cat > "${rootfs}/etc/ssh/sshd_config.d/rollgate-lab.conf" <<'CONF'
# rollgate lab: keys only, no root login.
PermitRootLogin no
PasswordAuthentication no
KbdInteractiveAuthentication no
CONF
    mkdir -p "${rootfs}/etc/systemd/system/ssh.service.d"
    cat > "${rootfs}/etc/systemd/system/ssh.service.d/host-keys.conf" <<'CONF'
# The image carries no host keys: make this host's own before sshd checks its config.
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
CONF
}

ensure_base_image() {
    local suite="$1" image="${BASE_IMAGE_PREFIX}:$1" want have
    want="$(recipe_hash "${suite}")"
    have="$(podman image inspect --format '{{ index .Labels "rollgate.recipe" }}' "${image}" 2>/dev/null || true)"
    # podman import keeps no labels; the recipe travels in the image's comment instead.
    [[ -n "${have}" && "${have}" != "<no value>" ]] || have="$(podman image inspect --format '{{ .Comment }}' "${image}" 2>/dev/null || true)"
    if [[ "${have}" == "rollgate.recipe=${want}" || "${have}" == "${want}" ]]; then
        return 0
    fi
    local mirror rootfs
    mirror="${ROLLGATE_DEBIAN_MIRROR:-$(debian_mirror)}"
    rootfs="$(mktemp -d /var/tmp/rollgate-rootfs.XXXXXX)"
    say "building the lab base image ${image} from ${mirror} (about a minute, once)"
    debootstrap --variant=minbase --include="${BASE_PACKAGES}" "${suite}" "${rootfs}" "${mirror}" >/dev/null \
        || die "debootstrap of ${suite} failed: check that ${mirror} is reachable (apt-get update must work)."
    # Containers need no getty on a console they do not have.
    rm -f "${rootfs}"/etc/systemd/system/getty.target.wants/* || true
    # Nor load kernel modules: on trixie, systemd-modules-load fails in a container (/etc/modules-load.d/modules.conf
    # points at an /etc/modules minbase lacks), which left the host "degraded" instead of "running".
    ln -sf /dev/null "${rootfs}/etc/systemd/system/systemd-modules-load.service"
    prepare_sshd "${rootfs}"
    # dpkg without an fsync per file, as in Docker's official Debian images: a lab host that crashes is made
    # again, never repaired, and the package installs of make test's parallel scenarios stop queueing on
    # the disk. Lab images only; hosts the roles converge elsewhere keep dpkg's defaults.
    echo force-unsafe-io > "${rootfs}/etc/dpkg/dpkg.cfg.d/rollgate-lab-unsafe-io"
    tar -C "${rootfs}" -c . | podman import --quiet --message "rollgate.recipe=${want}" \
        --change 'CMD ["/lib/systemd/systemd"]' - "${image}" >/dev/null
    rm -rf "${rootfs}"
    say "base image ready: ${image}"
}

ensure_base_images() {
    local suite
    for suite in "${BASE_SUITES[@]}"; do
        ensure_base_image "${suite}"
    done
}

BASE_IMAGE="${BASE_IMAGE_PREFIX}:${BASE_SUITES[0]}"

podman_runs() {
    podman run --rm --systemd=always --privileged "${BASE_IMAGE}" /bin/true >/dev/null 2>&1
}

ensure_podman_runs() {
    podman_runs && return 0
    if [[ -e "${DROPIN_FILE}" ]]; then
        die "podman cannot start a container even with ${DROPIN_FILE}: run 'podman run --rm ${BASE_IMAGE} /bin/true' to see why."
    fi
    # crun fails here ('cgroups in hybrid mode not supported') and the default rlimits need
    # CAP_SYS_RESOURCE. Only a drop-in of our own is written; a user's configuration is untouched.
    say "podman cannot start containers with its defaults here; writing ${DROPIN_FILE} (runc, cgroupfs, ulimits)"
    mkdir -p "${DROPIN_DIR}"
    cat >"${DROPIN_FILE}" <<'EOF'
# Written by rollgate scripts/bootstrap.sh because 'podman run' failed with the defaults.
[containers]
default_ulimits = ["nofile=16384:16384", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
EOF
    podman_runs || die "podman still cannot start a container: run 'podman run --rm ${BASE_IMAGE} /bin/true' to see why, and check that the kernel allows containers (user namespaces, overlayfs)."
}

# Every systemd container holds about five inotify instances, and the kernel's default allows 128 per
# user: beyond about 25 containers (a 20-host lab and a molecule scenario), systemd in a new container
# cannot start and the container stops at once ("can only create exec sessions on running containers").
INOTIFY_INSTANCES=1024
SYSCTL_FILE="/etc/sysctl.d/50-rollgate-lab.conf"

ensure_inotify_instances() {
    local current
    current="$(sysctl -n fs.inotify.max_user_instances)"
    (( current >= INOTIFY_INSTANCES )) && return 0
    say "raising fs.inotify.max_user_instances from ${current} to ${INOTIFY_INSTANCES} (${SYSCTL_FILE}): each lab host's systemd needs about five"
    printf '# Written by rollgate scripts/bootstrap.sh: about five per systemd container.\nfs.inotify.max_user_instances = %s\n' \
        "${INOTIFY_INSTANCES}" >"${SYSCTL_FILE}"
    sysctl -q -w "fs.inotify.max_user_instances=${INOTIFY_INSTANCES}"
}

main() {
    local step="${1:-all}"
    require_root
    case "${step}" in
        venv) ensure_venv ;;
        host) ensure_host_packages ;;
        image) ensure_host_packages; ensure_base_images ;;
        podman) ensure_host_packages; ensure_base_images; ensure_podman_runs; ensure_inotify_instances ;;
        all) ensure_host_packages; ensure_venv; ensure_base_images; ensure_podman_runs; ensure_inotify_instances ;;
        *) die "unknown step '${step}': use venv, host, image, podman or all." ;;
    esac
}

main "$@"
