#!/usr/bin/env bash
# Kubernetes benchmark (issue 7): N sequential `kubectl get pod web -o name`
# against the stand-in API server (tests/src/kube_api.rs, run by the
# `kube-api` binary: no real kube-apiserver can run on the test machines)
# two ways in one run: directly (kubectl holds the token and the CA) and
# through hoop (a `type = "kubernetes"` connection: kubectl talks plain
# HTTP to `hoop connect`'s port with the kubeconfig it wrote; the agent
# injects the token and audits each request).
#
# The calls alternate between the paths, one at a time (direct, hoop, then
# hoop, direct, ...), each timed on its own, so that the machine's speed
# drifting (other work, CPU frequency) hits both paths alike. The added
# latency per API request is the median over the pairs of
#   (hoop call - direct call) / API requests per call
# with the requests per call read from the stand-in's own counter (GET
# /__stats), so kubectl's process start and discovery-cache reads cancel
# out. Totals per path are shown too. Target: under 1 ms added per
# request on loopback.
#
# Everything listens on 127.0.0.1 on a free port and is stopped on exit.
# The target is informative: the script exits 0 unless something broke.
# Helpers (processes, ports, the hoop agent and `hoop connect`) come from
# scripts/bench.sh.
#
#   scripts/bench-kube.sh [--quick] [--requests N] [--rounds N] [--out FILE]
#                         [--no-build] [--debug]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=bench.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench.sh"
# shellcheck source-path=SCRIPTDIR source=bench-pg.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-pg.sh" # median

usage() {
    cat <<'EOF2'
usage: scripts/bench-kube.sh [--quick] [--requests N] [--rounds N] [--out FILE]
                             [--no-build] [--debug]
  --quick        smoke test: --requests 20 --rounds 1
  --requests N   sequential kubectl runs per path and round (default 200)
  --rounds N     rounds, the paths taking turns; medians shown (default 3)
  --out FILE     also write the results (markdown) to FILE
  --no-build     use the binaries already in target/release
  --debug        use the debug binaries in target/debug (builds nothing;
                 for trying the script out, not for figures)
$HOOP_BENCH_BIN, when set, names a folder holding hoop, hoop-agent,
hoop-test-issuer and kube-api to use instead (with --no-build).
EOF2
}

ARGS="$*"
REQUESTS=200 ROUNDS=3 OUT="" BUILD=1 DEBUG=0
num() { [[ $2 =~ ^[1-9][0-9]*$ ]] || { echo "bench-kube.sh: $1 needs a positive number" >&2; exit 2; }; }
while (($#)); do
    case "$1" in
        --quick) REQUESTS=20 ROUNDS=1 ;;
        --requests | --rounds | --out)
            [[ $# -ge 2 ]] || { usage >&2; exit 2; }
            case "$1" in
                --requests) num "$1" "$2"; REQUESTS=$2 ;;
                --rounds) num "$1" "$2"; ROUNDS=$2 ;;
                --out) OUT=$2 ;;
            esac
            shift
            ;;
        --no-build) BUILD=0 ;;
        --debug) DEBUG=1 BUILD=0 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "bench-kube.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
if [[ -n $OUT && $OUT != /* ]]; then OUT="$PWD/$OUT"; fi

bench_init bench-kube.sh
if ((DEBUG)) && [[ -z ${HOOP_BENCH_BIN:-} ]]; then BIN=$ROOT/target/debug; fi
for tool in kubectl curl python3; do
    command -v "$tool" >/dev/null || die "$tool is missing (install kubernetes-client / curl / python3)"
done

if ((BUILD)); then build_release; fi
for b in hoop-test-issuer hoop-agent hoop kube-api; do
    [[ -x $BIN/$b ]] || die "$BIN/$b is missing; run without --no-build (or build it)"
done
LOAD_START=$(load_now)

# ------------------------------------------------------------ the stand-in

start kubeapi "$BIN/kube-api"
KUBE_PID=$LAST_PID
wait_line kubeapi "$KUBE_PID" '^TOKEN='
KUBE_URL=$(value "$TMP/kubeapi.out" URL)
KUBE_CA=$(value "$TMP/kubeapi.out" CA)
KUBE_TOKEN=$(value "$TMP/kubeapi.out" TOKEN)
log "stand-in API server at $KUBE_URL"

# served: the stand-in's count of API requests it served with the token.
served() {
    curl -sS --noproxy '*' --cacert "$KUBE_CA" "$KUBE_URL/__stats" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["served"])'
}

# The direct path: kubectl holds the token and the CA.
DIRECT_KC="$TMP/direct.kubeconfig"
cat >"$DIRECT_KC" <<EOF2
apiVersion: v1
kind: Config
clusters:
- name: standin
  cluster:
    server: "$KUBE_URL"
    certificate-authority: "$KUBE_CA"
users:
- name: standin
  user:
    token: "$KUBE_TOKEN"
contexts:
- name: standin
  context: {cluster: standin, user: standin}
current-context: standin
EOF2
chmod 600 "$DIRECT_KC"

# ------------------------------------------------------------ hoop

start_hoop_agent "[[connection]]
name = \"k8s\"
type = \"kubernetes\"
url = \"$KUBE_URL\"
token = { env = \"BENCH_KUBE_TOKEN\" }
ca = \"$KUBE_CA\"
allow_groups = [\"eng\"]" BENCH_KUBE_TOKEN="$KUBE_TOKEN"
HOOP_PORT=$(free_port tcp)
start_hoop_connect k8s "$HOOP_PORT"
HOOP_KC="$HOOP_CONFIG_DIR/kube/k8s.kubeconfig"
[[ -s $HOOP_KC ]] || die "hoop connect wrote no kubeconfig at $HOOP_KC"

# ------------------------------------------------------------ runs

# Each path has its own kubectl HOME (discovery cache), warmed first.
kube() { # PATH_NAME ARGS...
    local name=$1 kc
    shift
    if [[ $name == direct ]]; then kc=$DIRECT_KC; else kc=$HOOP_KC; fi
    HOME="$TMP/home-$name" KUBECONFIG="$kc" kubectl --request-timeout 30s "$@"
}
for p in direct hoop; do
    mkdir -p "$TMP/home-$p"
    [[ $(kube "$p" get pod web -o name) == pod/web ]] || die "kubectl get pod web failed on the $p path"
done

# timed_call NAME: one kubectl run on path NAME; prints its nanoseconds.
timed_call() {
    local t0 t1
    t0=$(date +%s%N)
    kube "$1" get pod web -o name >/dev/null || die "kubectl failed on the $1 path"
    t1=$(date +%s%N)
    echo $((t1 - t0))
}
BEFORE=$(served)
for ((r = 1; r <= ROUNDS; r++)); do
    log "round $r/$ROUNDS: $REQUESTS x kubectl get pod web -o name per path, alternating"
    for ((i = 0; i < REQUESTS; i++)); do
        if (((i + r) % 2)); then
            d=$(timed_call direct)
            h=$(timed_call hoop)
        else
            h=$(timed_call hoop)
            d=$(timed_call direct)
        fi
        echo "$d" >>"$TMP/direct.calls"
        echo "$h" >>"$TMP/hoop.calls"
        echo $((h - d)) >>"$TMP/diff.calls"
    done
done
AFTER=$(served)
CALLS=$((ROUNDS * REQUESTS))

# ------------------------------------------------------------ report

# Seconds of REQUESTS calls, per path, and API requests per call.
DIRECT_S=$(awk -v n="$ROUNDS" '{ t += $1 } END { printf "%.3f\n", t / n / 1e9 }' "$TMP/direct.calls")
HOOP_S=$(awk -v n="$ROUNDS" '{ t += $1 } END { printf "%.3f\n", t / n / 1e9 }' "$TMP/hoop.calls")
PER_CALL=$(awk -v r="$((AFTER - BEFORE))" -v c="$CALLS" 'BEGIN { printf "%.2f\n", r / (2 * c) }')
DIFF_MS=$(sort -n "$TMP/diff.calls" | awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.3f\n", m / 1e6 }')
ADDED_MS=$(awk -v d="$DIFF_MS" -v n="$PER_CALL" 'BEGIN { if (n + 0 == 0) print "-"; else printf "%.3f\n", d / n }')
MEAN_MS=$(awk -v h="$HOOP_S" -v d="$DIRECT_S" -v n="$PER_CALL" -v c="$REQUESTS" \
    'BEGIN { if (n + 0 == 0) print "-"; else printf "%.3f\n", (h - d) * 1000 / c / n }')
PER_RUN_D=$(awk -v s="$DIRECT_S" -v n="$REQUESTS" 'BEGIN { printf "%.1f\n", s * 1000 / n }')
PER_RUN_H=$(awk -v s="$HOOP_S" -v n="$REQUESTS" 'BEGIN { printf "%.1f\n", s * 1000 / n }')
VERDICT=$(awk -v a="$ADDED_MS" 'BEGIN { if (a == "-") print "-"; else if (a + 0 < 1) print "PASS"; else print "FAIL" }')
AUDIT_LINES=$(wc -l <"$AGENT_DIR/audit/audit.jsonl" 2>/dev/null || echo 0)

{
    echo "### kubectl through hoop (scripts/bench-kube.sh $ARGS)"
    echo
    echo "- $(kubectl version --client 2>/dev/null | head -n 1); stand-in API server over TLS on loopback"
    echo "- $REQUESTS sequential \`kubectl get pod web -o name\` per path and round, $ROUNDS round(s), the paths alternating call by call; load at start: $LOAD_START"
    echo "- API requests per kubectl run: $PER_CALL ($((AFTER - BEFORE)) served for $((2 * CALLS)) runs)"
    echo "- hoop: kubernetes connection, token injected by the agent, audit on ($AUDIT_LINES audit lines)"
    echo
    echo "| path | $REQUESTS runs, mean of the rounds (s) | per kubectl run (ms) |"
    echo "| --- | --- | --- |"
    echo "| direct | $DIRECT_S | $PER_RUN_D |"
    echo "| hoop | $HOOP_S | $PER_RUN_H |"
    echo
    echo "Added latency per API request, median over the $CALLS pairs: $ADDED_MS ms (target < 1 ms): $VERDICT"
    echo "(from the totals: $MEAN_MS ms)"
    w=$(agent_warnings)
    [[ -z $w ]] || printf '\nagent warnings:\n%s\n' "$w"
} | tee "$TMP/report.md"
if [[ -n $OUT ]]; then cp "$TMP/report.md" "$OUT"; fi
