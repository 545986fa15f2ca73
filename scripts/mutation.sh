#!/usr/bin/env bash
# A mutation round on the security-critical modules (mutmut; its settings are
# pyproject.toml's [tool.mutmut]): each mutant is one small bug put in a function, and
# the tests that reach that function are run against it. A mutant the tests pass on
# (survived) is a bug they would let through. How to read it: docs/architecture.md,
# "Mutation testing". Slow (an hour and more on two cores): not part of CI.
#
#   scripts/mutation.sh                 # every module below
#   scripts/mutation.sh auth cache      # some of them
#   scripts/mutation.sh --summary       # the last round's figures, without running
#
# MUTATION_TIMEOUT (seconds, default 7200) bounds the run; MUTATION_CHILDREN (default 2)
# is how many mutants run at once. Results stay in mutants/ (not committed): a second run
# tests only what changed since; `rm -rf mutants` starts over.
set -euo pipefail
cd "$(dirname "$0")/.."

declare -A MODULES=(
    [auth]="applications_api.auth.*"
    [forwarding]="applications_api.app_proxy.forwarding.*"
    [network_policy]="applications_api.app_proxy.network_policy.*"
    [signing]="applications_api.app_proxy.signing.*"
    [cache]="applications_api.cache.*"
    [secrets]="applications_api.applications.secrets.*"
    [history]="applications_api.applications.history.*"
)
ORDER=(auth forwarding network_policy signing cache secrets history)

summary() {
    # mutmut's verdicts, counted per module: killed (a test failed), timeout (it hung:
    # killed too), survived, no tests (no selected test reaches the function), and not
    # checked (not run yet). The share killed is of those run.
    .venv/bin/mutmut results --all true | .venv/bin/python -c '
import collections, sys
order = sys.argv[1:]
counts = collections.defaultdict(collections.Counter)
survivors = collections.defaultdict(list)
for line in sys.stdin:
    name, _, status = line.strip().rpartition(": ")
    if not name.startswith("applications_api."):
        continue
    module = next((m for m in order if f".{m}." in name or name.startswith(f"applications_api.{m}.")), None)
    if module is None:
        continue
    counts[module][status] += 1
    if status == "survived":
        survivors[module].append(name)
print("%-16s%8s%9s%10s%10s%13s%10s" % ("module", "killed", "timeout", "survived", "no tests", "not checked", "killed %"))
for module in order:
    c = counts[module]
    killed, timeout, survived, untested = c["killed"], c["timeout"], c["survived"], c["no tests"]
    unchecked = sum(c.values()) - killed - timeout - survived - untested
    judged = killed + timeout + survived
    ratio = f"{100 * (killed + timeout) / judged:.1f}" if judged else "-"
    print(f"{module:<16}{killed:>8}{timeout:>9}{survived:>10}{untested:>10}{unchecked:>13}{ratio:>10}")
for module in order:
    for name in survivors[module]:
        print("survived:", name)
' "${ORDER[@]}"
}

if [ "${1:-}" = "--summary" ]; then
    summary
    exit 0
fi
scripts/setup-venv.sh requirements-dev.txt
selected=("$@")
[ ${#selected[@]} -gt 0 ] || selected=("${ORDER[@]}")
globs=()
for module in "${selected[@]}"; do
    [ -n "${MODULES[$module]:-}" ] || { echo "unknown module: $module (${ORDER[*]})" >&2; exit 2; }
    globs+=("${MODULES[$module]}")
done
status=0
timeout "${MUTATION_TIMEOUT:-7200}" .venv/bin/mutmut run --max-children "${MUTATION_CHILDREN:-2}" \
    "${globs[@]}" || status=$?
summary
# (124: the time ran out; the figures above count what was run)
exit "$status"
