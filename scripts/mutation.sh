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
#   scripts/mutation.sh --survivors signing   # the survivors again, against today's tests
#
# MUTATION_TIMEOUT (seconds, default 7200) bounds the run; MUTATION_CHILDREN (default 2)
# is how many mutants run at once. Results stay in mutants/ (not committed): a second run
# tests only what changed since; `rm -rf mutants` starts over.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each module: the files mutated, and the tests whose subject it is (the only ones run
# against its mutants: the whole suite reaches auth and the cache, and running all of it
# for every mutant that survives would take hours).
declare -A FILES=(
    [auth]="applications_api/auth/authentication.py applications_api/auth/tokens.py"
    [forwarding]="applications_api/app_proxy/forwarding.py"
    [network_policy]="applications_api/app_proxy/network_policy.py"
    [signing]="applications_api/app_proxy/signing.py"
    [cache]="applications_api/cache.py"
    [secrets]="applications_api/applications/secrets.py"
    [history]="applications_api/applications/history.py"
)
declare -A TESTS=(
    [auth]="tests/auth tests/test_layout.py tests/test_freshness.py tests/api/test_settings.py tests/applications/test_history.py"
    [forwarding]="tests/app_proxy/test_forwarding.py tests/app_proxy/test_refusals.py tests/app_proxy/test_attacks.py tests/app_proxy/test_safety.py tests/app_proxy/test_plan.py tests/app_proxy/test_signatures.py"
    [network_policy]="tests/app_proxy/test_forwarding.py tests/app_proxy/test_refusals.py tests/app_proxy/test_attacks.py tests/app_proxy/test_safety.py tests/app_proxy/test_plan.py tests/app_proxy/test_tls.py"
    [signing]="tests/app_proxy/test_signatures.py tests/app_proxy/test_key_rotation.py tests/app_proxy/test_key_separation.py tests/app_proxy/test_plan.py tests/api/test_settings.py"
    [cache]="tests/test_cache_recovery.py tests/test_freshness.py tests/topology/test_pgbouncer.py"
    [secrets]="tests/applications"
    [history]="tests/applications"
)
ORDER=(auth forwarding network_policy signing cache secrets history)

ROOT=$PWD
# A module's round works in a copy of the tree of its own, mutants/<module>/ (not
# committed), whose [tool.mutmut] names that module's files and tests.
workdir() { echo "$ROOT/mutants/$1"; }

prepare() {
    local module=$1 dir
    dir=$(workdir "$module")
    mkdir -p "$dir"
    rsync -a --delete --exclude /.git --exclude /.venv --exclude /mutants --exclude /node_modules \
        "$ROOT/" "$dir/"
    ln -sfn "$ROOT/.venv" "$dir/.venv"
    ln -sfn "$ROOT/node_modules" "$dir/node_modules"
    .venv/bin/python - "$dir/pyproject.toml" "${FILES[$module]}" "${TESTS[$module]}" <<'PY'
import re, sys
path, files, tests = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
text = open(path).read()
def listed(values):
    return "[\n" + "".join(f'    "{value}",\n' for value in values) + "]"
for key, values in (("only_mutate", files), ("pytest_add_cli_args_test_selection", tests)):
    text, found = re.subn(rf"(?m)^{key} = \[[^\]]*\]", f"{key} = {listed(values)}", text)
    assert found == 1, key
open(path, "w").write(text)
PY
}

summary() {
    # mutmut's verdicts, counted per module: killed (a test failed), timeout (it hung:
    # killed too), survived, no tests (no selected test reaches the function), and not
    # checked (not run yet). The share killed is of those run.
    local module
    printf "%-16s%8s%9s%10s%10s%13s%10s\n" module killed timeout survived "no tests" "not checked" "killed %"
    for module in "${ORDER[@]}"; do
        [ -d "$(workdir "$module")/mutants" ] || continue
        (cd "$(workdir "$module")" && "$ROOT/.venv/bin/mutmut" results --all true 2>/dev/null) |
            "$ROOT/.venv/bin/python" -c '
import collections, sys
module = sys.argv[1]
counts, survivors = collections.Counter(), []
for line in sys.stdin:
    name, _, status = line.strip().rpartition(": ")
    if name.startswith("applications_api."):
        counts[status] += 1
        if status == "survived":
            survivors.append(name)
killed, timeout, survived, untested = (counts[k] for k in ("killed", "timeout", "survived", "no tests"))
unchecked = sum(counts.values()) - killed - timeout - survived - untested
judged = killed + timeout + survived
ratio = f"{100 * (killed + timeout) / judged:.1f}" if judged else "-"
print(f"{module:<16}{killed:>8}{timeout:>9}{survived:>10}{untested:>10}{unchecked:>13}{ratio:>10}")
for name in survivors:
    print("    survived:", name)
' "$module"
    done
}

if [ "${1:-}" = "--summary" ]; then
    summary
    exit 0
fi
again=""
if [ "${1:-}" = "--survivors" ]; then  # (new tests are mapped to functions first)
    again=1
    shift
fi
scripts/setup-venv.sh requirements-dev.txt
selected=("$@")
[ ${#selected[@]} -gt 0 ] || selected=("${ORDER[@]}")
for module in "${selected[@]}"; do
    [ -n "${FILES[$module]:-}" ] || { echo "unknown module: $module (${ORDER[*]})" >&2; exit 2; }
done
status=0
for module in "${selected[@]}"; do
    prepare "$module"
    names=()
    if [ -n "$again" ]; then
        mapfile -t names < <(cd "$(workdir "$module")" && "$ROOT/.venv/bin/mutmut" results 2>/dev/null |
            sed -n 's/^ *\(applications_api\.[^:]*\): survived$/\1/p')
        [ ${#names[@]} -gt 0 ] || continue
    fi
    (cd "$(workdir "$module")" && timeout "${MUTATION_TIMEOUT:-7200}" "$ROOT/.venv/bin/mutmut" run \
        --max-children "${MUTATION_CHILDREN:-2}" "${names[@]}") || status=$?
done
summary
# (124: the time ran out; the figures above count what was run)
exit "$status"
