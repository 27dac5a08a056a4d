#!/usr/bin/env bash
# Tunnel benchmark: the same TCP client run directly against a loopback
# server, through `ssh -N -L` (a private sshd started here) and through hoop
# (issuer, agent and `hoop connect` started here). Prints throughput,
# round-trip latency, connection setup and the agent's memory, each with
# its ratio to direct, and PASS/FAIL against the targets of issue 2.
#
# Everything listens on 127.0.0.1 on a free port and is stopped on exit.
# The targets are informative: the script exits 0 unless something broke.
#
#   scripts/bench.sh [--quick] [--out FILE] [--no-ssh] [--no-hoop] [--no-build]
#
# Sourced (as scripts/bench-pg.sh does), it only defines its helpers:
# process handling, free ports, the sshd + `ssh -N -L` and hoop set-ups and
# the report's ratios and verdicts. Call bench_init first.
set -euo pipefail

# ============================================================ helpers

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf '== %s\n' "$*" >&2; }
die() { printf '%s: %s\n' "${BENCH_NAME:-bench.sh}" "$*" >&2; exit 1; }

# bench_init NAME: the script's name for messages; sets ROOT (and cds
# there), BIN, TMP (removed on exit), PIDS and the exit trap.
bench_init() {
    BENCH_NAME=$1
    ROOT=$BENCH_ROOT
    cd "$ROOT"
    # HOOP_BENCH_BIN points at another folder of binaries (to test these
    # scripts against stand-ins); the default is the release build.
    BIN=${HOOP_BENCH_BIN:-$ROOT/target/release}
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/hoop-bench.XXXXXX")
    PIDS=()
    CLEANUP_HOOKS=()
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# ------------------------------------------------------------ processes

# Every process this script started, and its descendants (sshd forks one
# per connection), newest first.
kill_tree() {
    local pid=$1 child
    for child in $(pgrep -P "$pid" 2>/dev/null || true); do kill_tree "$child"; done
    kill "$pid" 2>/dev/null || true
}
# stop PID: stops a process started here and forgets it, so that cleanup
# never signals a recycled process id.
stop() {
    local pid=$1 i
    kill_tree "$pid"
    wait "$pid" 2>/dev/null || true
    for i in "${!PIDS[@]}"; do [[ ${PIDS[i]} != "$pid" ]] || unset 'PIDS[i]'; done
    PIDS=("${PIDS[@]}")
}
# Runs the CLEANUP_HOOKS (commands that stop what is not a child, such as a
# daemonised PostgreSQL), then stops every process started here.
cleanup() {
    local status=$? i hook
    trap - EXIT INT TERM
    for hook in "${CLEANUP_HOOKS[@]}"; do eval "$hook" || true; done
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill_tree "${PIDS[i]}"; done
    for ((i = 0; i < 50; i++)); do
        local alive=0 pid
        for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    if ((status != 0)); then
        echo "$BENCH_NAME: failed; logs of the started processes:" >&2
        for f in "$TMP"/*.err; do
            [[ -s $f ]] || continue
            echo "--- ${f##*/}" >&2
            tail -n 20 "$f" >&2
        done
    fi
    rm -rf "$TMP"
    exit "$status"
}

# start NAME CMD...: runs CMD in the background, stdout and stderr in
# $TMP/NAME.out and $TMP/NAME.err; sets LAST_PID.
start() {
    local name=$1
    shift
    "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" </dev/null &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# wait_line NAME PID PATTERN: waits (at most 60 s) until $TMP/NAME.out has a
# line matching PATTERN, failing early if PID has exited.
wait_line() {
    local name=$1 pid=$2 pattern=$3 i
    for ((i = 0; i < 600; i++)); do
        grep -q -- "$pattern" "$TMP/$name.out" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || die "$name exited before printing $pattern"
        sleep 0.1
    done
    die "$name did not print $pattern within 60 s"
}

# wait_port PORT PID NAME: waits (at most 30 s) until 127.0.0.1:PORT accepts.
wait_port() {
    local port=$1 pid=$2 name=$3 i
    for ((i = 0; i < 300; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        kill -0 "$pid" 2>/dev/null || die "$name exited before 127.0.0.1:$port accepted"
        sleep 0.1
    done
    die "$name: 127.0.0.1:$port did not accept within 30 s"
}

free_port() {
    python3 -c 'import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if sys.argv[1] == "udp" else socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])' "$1"
}

# value FILE KEY: the value of KEY=... in FILE, or "-".
value() {
    local v
    v=$(sed -n "s/^$2=//p" "$1" 2>/dev/null | tail -n 1)
    echo "${v:--}"
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# Resident memory of PID and all its descendants, in KiB.
tree_rss_kib() {
    local pid=$1 total child
    total=$(rss_kib "$pid" 2>/dev/null || echo 0)
    for child in $(pgrep -P "$pid" 2>/dev/null || true); do
        total=$((total + $(tree_rss_kib "$child")))
    done
    echo "$total"
}

# CPU time (user + system, including reaped children) of PID and its live
# descendants, in clock ticks (getconf CLK_TCK, normally 100 per second).
tree_cpu_ticks() {
    local pid=$1 total child
    # Fields 14-17 of /proc/PID/stat, counted after the ")" ending the name.
    total=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null |
        awk '{ print $12 + $13 + $14 + $15 }' || true)
    total=${total:-0}
    for child in $(pgrep -P "$pid" 2>/dev/null || true); do
        total=$((total + $(tree_cpu_ticks "$child")))
    done
    echo "$total"
}

build_release() {
    log "building release binaries"
    cargo build --release --locked -p hoop-agent -p hoop-cli -p hoop-tests --bins
}

load_now() { cut -d' ' -f1-3 /proc/loadavg; }

# ------------------------------------------------------------ ssh -L

# start_private_sshd EXTRA [HINT]: a private sshd on loopback (temporary
# config, a host key of its own, $TMP/id_ed25519 as the one authorized
# key) with the sshd_config lines EXTRA; HINT is added to the error when
# no sshd can be found or installed. Sets SSHD_PID and SSHD_PORT and
# writes $TMP/known_hosts for it.
start_private_sshd() {
    local extra=$1 hint=${2:-} sshd
    sshd=$(command -v sshd || echo /usr/sbin/sshd)
    if [[ ! -x $sshd ]] && ((EUID == 0)) && command -v apt-get >/dev/null; then
        log "sshd not found: installing openssh-server with apt-get"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server >&2
        sshd=/usr/sbin/sshd
    fi
    [[ -x $sshd ]] || die "sshd not found (install openssh-server${hint:+, or $hint})"
    # sshd re-executes itself, so it must be started by its absolute path.
    sshd=$(readlink -f "$sshd")

    mkdir -p /run/sshd 2>/dev/null || true # its privilege-separation directory (as root)
    ssh-keygen -q -t ed25519 -N '' -C bench-host -f "$TMP/ssh_host_ed25519_key"
    ssh-keygen -q -t ed25519 -N '' -C bench-client -f "$TMP/id_ed25519"
    cp "$TMP/id_ed25519.pub" "$TMP/authorized_keys"
    SSHD_PORT=$(free_port tcp)
    echo "[127.0.0.1]:$SSHD_PORT $(cut -d' ' -f1,2 "$TMP/ssh_host_ed25519_key.pub")" >"$TMP/known_hosts"
    cat >"$TMP/sshd_config" <<EOF
Port $SSHD_PORT
ListenAddress 127.0.0.1
HostKey $TMP/ssh_host_ed25519_key
AuthorizedKeysFile $TMP/authorized_keys
PidFile $TMP/sshd.pid
UsePAM no
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
$extra
EOF
    start sshd "$sshd" -D -e -f "$TMP/sshd_config"
    SSHD_PID=$LAST_PID
    wait_port "$SSHD_PORT" "$SSHD_PID" sshd
}

# start_ssh_forward TARGET: a private sshd on loopback (start_private_sshd)
# and `ssh -N -L` to TARGET (host:port) through it. Sets SSHD_PID, SSH_PID,
# FWD_PORT (the local end) and SSH_CIPHER.
start_ssh_forward() {
    local target=$1 ssh_port
    start_private_sshd "PermitRootLogin yes
AllowTcpForwarding yes" "pass --no-ssh"
    ssh_port=$SSHD_PORT

    FWD_PORT=$(free_port tcp)
    start ssh ssh -v -N -F /dev/null -p "$ssh_port" -i "$TMP/id_ed25519" \
        -o IdentitiesOnly=yes -o BatchMode=yes -o ExitOnForwardFailure=yes \
        -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$TMP/known_hosts" \
        -L "127.0.0.1:$FWD_PORT:$target" "$(id -un)@127.0.0.1"
    SSH_PID=$LAST_PID
    wait_port "$FWD_PORT" "$SSH_PID" "ssh -L"
    SSH_CIPHER=$(sed -n 's/.*kex: server->client cipher: \([^ ]*\) MAC: \([^ ]*\).*/\1 (MAC \2)/p' \
        "$TMP/ssh.err" | head -n 1)
    log "ssh -N -L 127.0.0.1:$FWD_PORT -> $target via sshd on $ssh_port, cipher ${SSH_CIPHER:--}"
}

# ------------------------------------------------------------ hoop

# start_hoop_agent CONNECTIONS [VAR=VALUE...]: the test issuer and a
# hoop-agent (data_dir, and so its audit log, in $TMP/agent) serving the
# [[connection]] tables in CONNECTIONS, with VAR=VALUE in its environment
# only. Exports the HOOP_* settings `hoop` needs and waits until
# `hoop connections` succeeds. Sets ISSUER_PID, AGENT_PID, AGENT_DIR and
# AGENT_RSS_START (KiB, one tunnel authenticated and closed).
start_hoop_agent() {
    local connections=$1 b i ready=0 issuer token fingerprint agent_port
    shift
    for b in hoop-test-issuer hoop-agent hoop; do
        [[ -x $BIN/$b ]] || die "$BIN/$b is missing (pass --no-hoop to skip hoop)"
    done
    start issuer "$BIN/hoop-test-issuer"
    ISSUER_PID=$LAST_PID
    wait_line issuer "$ISSUER_PID" '^TOKEN='
    issuer=$(value "$TMP/issuer.out" ISSUER)
    token=$(value "$TMP/issuer.out" TOKEN)

    AGENT_DIR="$TMP/agent"
    mkdir -p "$AGENT_DIR"
    "$BIN/hoop-agent" init --data-dir "$AGENT_DIR" >"$TMP/agent-init.out" 2>"$TMP/agent-init.err"
    fingerprint=$("$BIN/hoop-agent" fingerprint --data-dir "$AGENT_DIR")
    [[ $fingerprint == SHA256:* ]] || die "unexpected fingerprint output: $fingerprint"
    agent_port=$(free_port udp)
    cat >"$TMP/agent.toml" <<EOF
listen = "127.0.0.1:$agent_port"
data_dir = "$AGENT_DIR"

[[issuer]]
url = "$issuer"
audience = "hoop"

$connections
EOF
    start agent env "$@" "$BIN/hoop-agent" run --config "$TMP/agent.toml"
    AGENT_PID=$LAST_PID

    export HOOP_AGENT="127.0.0.1:$agent_port" HOOP_AGENT_FINGERPRINT="$fingerprint"
    export HOOP_TOKEN="$token" HOOP_CONFIG_DIR="$TMP/hoop-config"
    mkdir -p "$HOOP_CONFIG_DIR"
    for ((i = 0; i < 300; i++)); do
        if "$BIN/hoop" connections >"$TMP/connections.out" 2>"$TMP/connections.err"; then
            ready=1
            break
        fi
        kill -0 "$AGENT_PID" 2>/dev/null || die "hoop-agent exited during startup"
        sleep 0.1
    done
    ((ready)) || die "hoop connections did not succeed within 30 s"
    kill -0 "$AGENT_PID" 2>/dev/null || die "hoop-agent exited during startup"
    AGENT_RSS_START=$(rss_kib "$AGENT_PID")
    log "hoop-agent on udp 127.0.0.1:$agent_port ready, RSS $AGENT_RSS_START KiB"
}

# start_hoop_connect NAME PORT [LOG]: `hoop connect NAME -p PORT` (output in
# $TMP/LOG.out, default connect), waiting until the port accepts. Sets
# CONNECT_PID.
start_hoop_connect() {
    local log_name=${3:-connect}
    start "$log_name" "$BIN/hoop" connect "$1" -p "$2"
    CONNECT_PID=$LAST_PID
    wait_port "$2" "$CONNECT_PID" "hoop connect $1"
    log "hoop connect $1 on 127.0.0.1:$2: $(head -n 1 "$TMP/$log_name.out")"
}

# The agent's warnings (a capped UDP buffer among them), colours removed.
agent_warnings() {
    [[ -s $TMP/agent.err ]] || return 0
    sed 's/\x1b\[[0-9;]*m//g' "$TMP/agent.err" | grep -E ' (WARN|ERROR) ' | head -n 5 || true
}

# ------------------------------------------------------------ report

# ratio A B: A/B to two decimals, or "-".
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f\n", a / b }'
}
# verdict A B higher|lower: PASS when A is at least (higher) or at most
# (lower) B.
verdict() {
    awk -v a="$1" -v b="$2" -v want="$3" 'BEGIN {
        if (a == "-" || b == "-") print "-";
        else if (want == "higher") print (a + 0 >= b + 0 ? "PASS" : "FAIL");
        else print (a + 0 <= b + 0 ? "PASS" : "FAIL") }'
}

# Sourced for the helpers above: stop here.
[[ ${BASH_SOURCE[0]} == "$0" ]] || return 0

# ============================================================ bench.sh

usage() {
    cat <<'EOF'
usage: scripts/bench.sh [--quick] [--out FILE] [--no-ssh] [--no-hoop] [--no-build]
  --quick     small sizes (64 MiB, 2000 round trips, 200 setups, 200 idle)
              for a smoke test; default 1 GiB, 10000, 500, 1000
  --out FILE  also write the results table (markdown) to FILE
  --no-ssh    skip the ssh -L row
  --no-hoop   skip the hoop row
  --no-build  use the release binaries already in target/release
EOF
}

ARGS="$*"
QUICK=0 OUT="" RUN_SSH=1 RUN_HOOP=1 BUILD=1
while (($#)); do
    case "$1" in
        --quick) QUICK=1 ;;
        --out)
            [[ $# -ge 2 ]] || { usage >&2; exit 2; }
            OUT=$2
            shift
            ;;
        --no-ssh) RUN_SSH=0 ;;
        --no-hoop) RUN_HOOP=0 ;;
        --no-build) BUILD=0 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "bench.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
if [[ -n $OUT && $OUT != /* ]]; then OUT="$PWD/$OUT"; fi

if ((QUICK)); then
    BYTES=64M RTT_COUNT=2000 SETUP_COUNT=200 IDLE_COUNT=200
else
    BYTES=1G RTT_COUNT=10000 SETUP_COUNT=500 IDLE_COUNT=1000
fi
CLIENT_ARGS=(--bytes "$BYTES" --rtt-count "$RTT_COUNT" --setup-count "$SETUP_COUNT")

bench_init bench.sh

# idle_test NAME ADDR LABEL=PID...: holds IDLE_COUNT forwarded connections
# open through ADDR and writes, for each LABEL, the RSS of PID and its
# descendants before and with them to $TMP/NAME.mem as LABEL_before_kib=
# and LABEL_idle_kib=.
idle_test() {
    local name=$1 addr=$2 line ready=0 spec
    shift 2
    for spec in "$@"; do
        echo "${spec%%=*}_before_kib=$(tree_rss_kib "${spec#*=}")" >>"$TMP/$name.mem"
    done
    coproc IDLE { exec "$BIN/hoop-bench" idle --addr "$addr" --count "$IDLE_COUNT" 2>"$TMP/$name-idle.err"; }
    # shellcheck disable=SC2153 # IDLE_PID is set by coproc
    local idle_pid=$IDLE_PID to_idle=${IDLE[1]} from_idle=${IDLE[0]}
    PIDS+=("$idle_pid")
    while IFS= read -r -t 120 line <&"$from_idle"; do
        echo "$line" >>"$TMP/$name-idle.out"
        if [[ $line == IDLE_READY ]]; then ready=1; break; fi
    done
    ((ready)) || die "$name: hoop-bench idle did not get $IDLE_COUNT connections through"
    for spec in "$@"; do
        echo "${spec%%=*}_idle_kib=$(tree_rss_kib "${spec#*=}")" >>"$TMP/$name.mem"
    done
    # Closing its stdin releases the connections.
    exec {to_idle}>&- {from_idle}<&-
    wait "$idle_pid" || true
    stop "$idle_pid"
    log "$name: RSS (KiB) before and with $IDLE_COUNT idle connections: $(tr '\n' ' ' <"$TMP/$name.mem")"
}

# run_client NAME ADDR: the measuring client against ADDR, into $TMP/NAME.txt.
run_client() {
    log "$1: client against $2 (${CLIENT_ARGS[*]})"
    "$BIN/hoop-bench" client --addr "$2" "${CLIENT_ARGS[@]}" | tee "$TMP/$1.txt" | sed 's/^/   /' >&2
}

# ------------------------------------------------------------ build

if ((BUILD)); then build_release; fi
[[ -x $BIN/hoop-bench ]] || die "$BIN/hoop-bench is missing; run without --no-build"

# Other work on the machine shows up in every figure: record the load.
LOAD_START=$(load_now)

# Room for a thousand idle connections in each process on the path.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ------------------------------------------------------------ direct

start server "$BIN/hoop-bench" server --listen 127.0.0.1:0
SERVER_PID=$LAST_PID
wait_line server "$SERVER_PID" '^LISTEN='
SERVER=$(value "$TMP/server.out" LISTEN)
log "bench server on $SERVER"
run_client direct "$SERVER"

# ------------------------------------------------------------ ssh -L

SSH_CIPHER=-
if ((RUN_SSH)); then
    start_ssh_forward "$SERVER"
    # The idle test comes first, on fresh processes, as for hoop below.
    # For comparison with the agent: the ssh client and the sshd processes.
    idle_test ssh "127.0.0.1:$FWD_PORT" client="$SSH_PID" server="$SSHD_PID"
    run_client ssh "127.0.0.1:$FWD_PORT"
    stop "$SSH_PID"
    stop "$SSHD_PID"
fi

# ------------------------------------------------------------ hoop

if ((RUN_HOOP)); then
    start_hoop_agent "[[connection]]
name = \"bench\"
type = \"tcp\"
address = \"$SERVER\"
allow_groups = [\"eng\"]"

    HOOP_PORT=$(free_port tcp)
    start_hoop_connect bench "$HOOP_PORT"
    echo "agent_start_kib=$AGENT_RSS_START" >"$TMP/hoop.mem"
    # The idle test comes before the bulk runs: the 1 GiB transfers leave
    # the agent's allocator holding megabytes of freed memory, which later
    # idle connections reuse without growing RSS, so measured after them
    # the growth per connection reads as zero.
    idle_test hoop "127.0.0.1:$HOOP_PORT" agent="$AGENT_PID" client="$CONNECT_PID"
    run_client hoop "127.0.0.1:$HOOP_PORT"
    echo "agent_after_kib=$(rss_kib "$AGENT_PID")" >>"$TMP/hoop.mem"
    stop "$CONNECT_PID"
fi

# ------------------------------------------------------------ report

kib_to_mib() { awk -v k="$1" 'BEGIN { if (k == "-") print "-"; else printf "%.1f MiB\n", k / 1024 }'; }
# per_conn NAME LABEL: LABEL's growth per idle connection in $TMP/NAME.mem.
per_conn() {
    awk -v a="$(mem "$1" "$2_before_kib")" -v b="$(mem "$1" "$2_idle_kib")" -v n="$IDLE_COUNT" 'BEGIN {
        if (a == "-" || b == "-") print "-"; else printf "%.1f KiB\n", (b - a) / n }'
}

row() { # label key want(higher|lower)
    local d s h
    d=$(value "$TMP/direct.txt" "$2")
    s=$(value "$TMP/ssh.txt" "$2")
    h=$(value "$TMP/hoop.txt" "$2")
    printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$d" "$s" "$h" \
        "$(ratio "$s" "$d")" "$(ratio "$h" "$d")" "$(ratio "$h" "$s")" "$(verdict "$h" "$s" "$3")"
}

mem() { value "$TMP/$1.mem" "$2"; }

report() {
    local cpu warnings
    cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
    echo "Tunnel benchmark, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "- command: scripts/bench.sh${ARGS:+ $ARGS}"
    echo "- machine: $(nproc) cores (${cpu:-unknown cpu}), Linux $(uname -r)"
    echo "- sizes: bulk $BYTES each way, $RTT_COUNT round trips of 1 byte, $SETUP_COUNT setups, $IDLE_COUNT idle connections"
    echo "- ssh: $(ssh -V 2>&1), cipher ${SSH_CIPHER:--}"
    echo "- load average (1, 5, 15 min): $LOAD_START at the start, $(load_now) at the end"
    echo "- UDP buffer caps: net.core.rmem_max=$(cat /proc/sys/net/core/rmem_max 2>/dev/null || echo -)," \
        "net.core.wmem_max=$(cat /proc/sys/net/core/wmem_max 2>/dev/null || echo -)"
    if ((RUN_HOOP)); then
        warnings=$(agent_warnings)
        echo "- hoop-agent warnings: ${warnings:-none}"
    fi
    echo
    echo "Ratios are the column over direct (or over ssh -L); for MB/s higher is better, for times lower."
    echo
    echo "| figure | direct | ssh -L | hoop | ssh/direct | hoop/direct | hoop/ssh | target: hoop vs ssh |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    row "upload MB/s" upload_mbps higher
    row "download MB/s" download_mbps higher
    row "round trip p50 µs" rtt_p50_us lower
    row "round trip p99 µs" rtt_p99_us lower
    row "setup p50 ms" setup_p50_ms lower
    row "setup p99 ms" setup_p99_ms lower
    row "setup mean ms" setup_mean_ms lower
    echo
    local start per
    start=$(kib_to_mib "$(mem hoop agent_start_kib)")
    per=$(per_conn hoop agent)
    echo "| memory (RSS) | value | target | result |"
    echo "| --- | ---: | ---: | --- |"
    echo "| hoop-agent idle, before any forwarded connection | $start | < 20 MiB | $(verdict "${start% MiB}" 20 lower) |"
    echo "| hoop-agent with $IDLE_COUNT idle connections | $(kib_to_mib "$(mem hoop agent_idle_kib)") | | |"
    echo "| hoop-agent after the bulk, round-trip and setup runs | $(kib_to_mib "$(mem hoop agent_after_kib)") | | |"
    echo "| hoop-agent per idle forwarded connection | $per | < 64 KiB | $(verdict "${per% KiB}" 64 lower) |"
    echo "| hoop connect (CLI) per idle forwarded connection | $(per_conn hoop client) | | |"
    echo "| ssh client per idle forwarded connection | $(per_conn ssh client) | | (comparison) |"
    echo "| sshd, all its processes, per idle forwarded connection | $(per_conn ssh server) | | (comparison) |"
    if ((!RUN_SSH)); then
        echo
        echo "ssh -L was skipped (--no-ssh)."
    fi
    if ((!RUN_HOOP)); then
        echo
        echo "hoop was skipped (--no-hoop): its column and the agent's memory are pending."
    fi
}

report >"$TMP/report.md"
echo
cat "$TMP/report.md"
if [[ -n $OUT ]]; then
    cp "$TMP/report.md" "$OUT"
    log "table written to $OUT"
fi
