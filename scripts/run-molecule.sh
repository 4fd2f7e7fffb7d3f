#!/usr/bin/env bash
# Run molecule scenarios, MOLECULE_JOBS at a time (default 3), each logging to .cache/molecule-<name>.log.
# Usage: scripts/run-molecule.sh SCENARIO...   Exits non-zero when any scenario failed, after all ran.
# With WITH_CHECK=1 (make test), `make check` is one more job, right after the stack: it runs beside the
# stack scenario, the critical path, instead of before it (log: .cache/make-check.log).
# The app releases the scenarios deploy are built once first, so parallel scenarios never build the
# same wheelhouse at the same time.
# The stack runs at normal priority, everything else at `nice` OTHERS_NICE (default 19): the stack is the
# longest and mostly waits (pauses, drains, traffic at a fixed rate), the others keep the CPU busy. Alone
# the stack leaves most of a core idle; beside two jobs of equal priority it would wait for the CPU. At
# nice 10 the others still cost it much: its converge took 560 s beside make check and app, 332 s at 19
# (149 s alone); the stack took 2,188 s in make test, 1,248 s alone. See OTHERS_CPU_SHARES and
# wait_for_the_stack below for what nice does not reach.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs="${MOLECULE_JOBS:-3}"
export OTHERS_NICE="${OTHERS_NICE:-19}"
# nice does not reach a container's processes: each container is a cgroup of its own (podman's libpod_parent),
# which gets as much CPU as any other, a stack host's included. The others' hosts get OTHERS_CPU_SHARES (the
# default is 1024): they take what the stack's hosts leave (molecule/resources/create.yml).
export OTHERS_CPU_SHARES="${OTHERS_CPU_SHARES:-32}"
# Molecule's console wraps at the terminal's width, 80 columns in a log: wide lines keep test ids whole.
export COLUMNS="${COLUMNS:-200}"
mkdir -p .cache

# 1.0.0 is the stacks' app_version; the others are every *_VERSION that test_upgrade.py deploys (read
# from it, so that a new one cannot be missed: two scenarios building it at once break each other).
upgrade_versions=$(grep -oE '^[A-Z_]+_VERSION = "[^"]+"' molecule/resources/stack_tests/test_upgrade.py | cut -d'"' -f2)
# build VERSION [TARGET]: the release for the controller's Python, or for TARGET (the JSON a host's
# wheel_target module reports), each build with its own log.
build() {
    local log=".cache/build-release-$1${2:+-$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["name"])' "$2")}.log"
    nice -n "$OTHERS_NICE" ansible-playbook -i localhost, playbooks/build_release.yml -e "app_version=$1" \
        ${2:+-e "{\"app_wheel_target\": $2}"} > "$log" 2>&1 \
        || { tail -n 40 "$log"; echo "building the wheelhouse of $1 failed" >&2; return 1; }
}
# The wheel targets of the scenarios' base images, read from a throwaway container of each as the
# wheel_target module reads a host (Debian 13's Python 3.13, say), but the controller's own, which `build
# VERSION` makes: every release is built for each here, off the critical path, so that no scenario's
# converge or deploy waits for its wheels.
read_target='import json, sys; sys.path.insert(0, sys.argv[1]); import wheel_target; print(json.dumps(wheel_target.read_target()))'
image_targets() {
    local image own target
    own="$(python3 -c "$read_target" library)"
    for image in $(grep -ohE 'image: localhost/rollgate-base:[a-z]+' molecule/*/molecule.yml | cut -d' ' -f2 | sort -u); do
        target="$(podman run --rm --network none -v "$PWD/library:/rollgate:ro" "$image" python3 -c "$read_target" /rollgate)"
        if python3 -c 'import json, sys; a, b = map(json.loads, sys.argv[1:]); sys.exit(a["name"] == b["name"])' "$target" "$own"; then
            echo "$target"
        fi
    done
}
# 1.0.0 before any scenario starts. The upgrade versions only the stack's tests deploy, minutes later (after
# its create and converge): they build beside the first scenarios, all at once, each in its own directory,
# and the stack's tests wait for RELEASES_BUILT (molecule/resources/stack_tests/conftest.py) to say "ok".
build 1.0.0
export RELEASES_BUILT="$PWD/.cache/releases-built"
rm -f "$RELEASES_BUILT"
(
    pids=()
    result=ok
    mapfile -t targets < <(image_targets)
    # 1.0.0 for the other images first: the stack's converge needs it within minutes.
    for target in "${targets[@]}"; do build 1.0.0 "$target" || result="building 1.0.0 for $target failed"; done
    for version in $upgrade_versions; do
        ( build "$version" && for target in "${targets[@]}"; do build "$version" "$target"; done ) & pids+=("$!:$version")
    done
    for entry in "${pids[@]}"; do wait "${entry%%:*}" || result="building ${entry#*:} failed: .cache/build-release-${entry#*:}.log"; done
    echo "$result" > "$RELEASES_BUILT.partial" && mv "$RELEASES_BUILT.partial" "$RELEASES_BUILT"
) &
builder=$!

# nice ranks processes within one scheduling group only. The kernel's autogroup (sched_autogroup_enabled, on
# in Debian's kernel) puts each session in a group of its own, which competes at full weight with every other
# group and with each container's cgroup: the stack's hosts, where its deploys do their work, met the nice'd
# others' whole session at full weight. So each other job runs in a session of its own, whose autogroup gets
# OTHERS_NICE (/proc/self/autogroup; this process's own scheduling, no system setting). Measured on the pair
# lab, the good nginx deploy: 96 s alone, 178 s beside the unit tests at nice 19, 116 s with their autogroup at 19.
lowly() { setsid -w bash -c 'echo "$OTHERS_NICE" > /proc/self/autogroup 2>/dev/null || true; exec nice -n "$OTHERS_NICE" "$@"' _ "$@"; }
export -f lowly

stamp() { local line; while IFS= read -r line || [ -n "$line" ]; do printf '%(%s)T %s\n' -1 "$line"; done; }
export -f stamp

# The others wait for the stack to converge: its converge is apt and dpkg on six hosts and Ansible's forks,
# which the others' installs slow however nice they run (dpkg's I/O is not the CPU's niceness): 153 s alone,
# 461-868 s beside them. Waiting costs them that much; they have time to spare beside the stack's tests, which
# mostly wait. Until the stack's log says its verify began, or its run ended, at most STACK_GATE_TIMEOUT s.
export STACK_GATE_TIMEOUT="${STACK_GATE_TIMEOUT:-900}"
wait_for_the_stack() {
    local waited=0
    [ -n "${STACK_GATE:-}" ] || return 0
    until grep -aq 'verify.*Executing' ".cache/molecule-$STACK_GATE.log" 2>/dev/null \
            || [ -e ".cache/molecule-$STACK_GATE.ended" ] || [ "$waited" -ge "$STACK_GATE_TIMEOUT" ]; do
        sleep 2; waited=$(( waited + 2 ))
    done
    echo "== $1 waited $waited s for the $STACK_GATE scenario's converge"
}
export -f wait_for_the_stack

run_one() {
    local scenario="$1" start status
    case "$scenario" in stack|stack_*) ;; *) wait_for_the_stack "$scenario";; esac
    start=$(date +%s)
    if [ "$scenario" = make-check ]; then
        if (set -o pipefail; ROLLGATE_CONTAINER_CPU_SHARES="$OTHERS_CPU_SHARES" lowly make --no-print-directory check 2>&1 | stamp > .cache/make-check.log); then
            echo "== make check passed in $(( $(date +%s) - start )) s"; return 0; fi
        echo "== make check FAILED in $(( $(date +%s) - start )) s (.cache/make-check.log)"
        echo make-check >> .cache/molecule-failed
        return 1
    fi
    # Each log line starts with the Unix time it was written: scripts/molecule_phases.py reads each
    # phase's time from them.
    local run=() shares=""
    case "$scenario" in stack|stack_*) ;; *) run=(lowly) shares="$OTHERS_CPU_SHARES";; esac
    if (set -o pipefail; ROLLGATE_CONTAINER_CPU_SHARES="$shares" "${run[@]}" molecule test -s "$scenario" 2>&1 | stamp > ".cache/molecule-$scenario.log"); then
        status=passed; else status=FAILED; fi
    touch ".cache/molecule-$scenario.ended"
    echo "== $scenario $status in $(( $(date +%s) - start )) s:" \
        "$(sed 's/\x1b\[[0-9;]*m//g' ".cache/molecule-$scenario.log" | grep -aoE '[0-9]+ (passed|failed)[^=]*' | tail -n 1)"
    if [ "$status" != passed ]; then echo "$scenario" >> .cache/molecule-failed; return 1; fi
}
export -f run_one

# Longest first, so that the last to finish are short: the stack, then (WITH_CHECK=1) make check, then the
# others in the order given; each takes the next free slot.
stacks=() others=()
for scenario in "$@"; do case "$scenario" in stack|stack_*) stacks=("$scenario" "${stacks[@]}");; *) others+=("$scenario");; esac; done
scenarios=("${stacks[@]}" "${others[@]}")
ordered=("${stacks[@]}")
[ "${WITH_CHECK:-0}" = 1 ] && ordered+=(make-check)
ordered+=("${others[@]}")

rm -f .cache/molecule-failed .cache/molecule-*.ended
# The first stack scenario, when one runs beside others: they wait for its converge (wait_for_the_stack).
export STACK_GATE=""
[ "${#stacks[@]}" -gt 0 ] && [ "${#ordered[@]}" -gt 1 ] && STACK_GATE="${stacks[0]}"
status=0
printf '%s\n' "${ordered[@]}" | xargs -P "$jobs" -I{} bash -c 'run_one "$@"' _ {} || status=$?
wait "$builder" || true
logs=()
for scenario in "${scenarios[@]}"; do logs+=(".cache/molecule-$scenario.log"); done
python3 scripts/molecule_phases.py "${logs[@]}" > .cache/molecule-phases.json || true
echo "molecule: seconds per phase (.cache/molecule-phases.json)"
python3 scripts/molecule_phases.py --table "${logs[@]}" || true
if [ "$status" = 0 ]; then
    echo "molecule: all ${#scenarios[@]} scenarios passed (phase times: .cache/molecule-phases.json)"
else
    log_of() { if [ "$1" = make-check ]; then echo .cache/make-check.log; else echo ".cache/molecule-$1.log"; fi; }
    while read -r scenario; do
        echo "---- last lines of $(log_of "$scenario")"
        tail -n 60 "$(log_of "$scenario")"
    done < .cache/molecule-failed
    # Last, where a CI summary that keeps only the end of the output still shows them: the tests that failed.
    while read -r scenario; do
        sed 's/\x1b\[[0-9;]*m//g' "$(log_of "$scenario")" | grep -aoE '(FAILED|ERROR) [^ ]+::[^ ]+( - .{0,160})?' | sort -u | head -n 15 \
            | sed "s|^|$scenario: |" || true
    done < .cache/molecule-failed
    echo "molecule: failed: $(tr '\n' ' ' < .cache/molecule-failed)(logs: .cache/molecule-<scenario>.log)" >&2
    exit 1
fi
