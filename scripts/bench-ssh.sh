#!/usr/bin/env bash
# SSH benchmark (issue 7): the real OpenSSH clients against a throwaway
# sshd two ways, directly and through hoop (a `type = "ssh"` connection:
# the caller's ssh ends at the agent, which logs in to sshd with its own
# key and records the session). Measures
#
# - scp upload of one file (1 GiB by default, random bytes, made once on
#   local disk and read from the page cache) to /dev/null on the host: best
#   and median MB/s of --rounds runs per path, the two paths taking turns;
# - keystroke round trips: scripts/ssh_keystroke.py types one byte at a
#   time into `ssh -tt HOST 'stty raw -echo; echo READY; exec cat'` and
#   waits for each to come back, median and p99 in ms; the added latency is
#   hoop's median minus direct's.
#
# with PASS/FAIL against the targets (scp hoop/direct >= 0.8, added
# keystroke latency < 0.3 ms), then the rows to paste into BENCHMARKS.md.
#
# Everything listens on 127.0.0.1 on a free port and is stopped on exit.
# The targets are informative: the script exits 0 unless something broke.
# Helpers (processes, ports, the hoop agent and `hoop connect`) come from
# scripts/bench.sh.
#
#   scripts/bench-ssh.sh [--quick] [--size-mb N] [--rounds N] [--keystrokes N]
#                        [--warmup N] [--payload-dir DIR] [--out FILE]
#                        [--no-build] [--debug]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=bench.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench.sh"

usage() {
    cat <<'EOF'
usage: scripts/bench-ssh.sh [--quick] [--size-mb N] [--rounds N] [--keystrokes N]
                            [--warmup N] [--payload-dir DIR] [--out FILE]
                            [--no-build] [--debug]
  --quick            smoke test: --size-mb 20 --rounds 1 --keystrokes 200 --warmup 20
  --size-mb N        size of the scp'd file in MiB (default 1024)
  --rounds N         scp runs per path; best and median shown (default 3)
  --keystrokes N     measured keystroke round trips per path (default 2000)
  --warmup N         unmeasured keystrokes first (default 200)
  --payload-dir DIR  where to make the file (default: the run's temporary
                     folder); it needs N MiB free, and should be local disk
  --out FILE         also write the results (markdown) to FILE
  --no-build         use the binaries already in target/release
  --debug            use the debug binaries in target/debug (builds nothing;
                     for trying the script out, not for figures)
$HOOP_BENCH_BIN, when set, names a folder holding hoop, hoop-agent and
hoop-test-issuer to use instead (with --no-build).
EOF
}

ARGS="$*"
SIZE_MB=1024 ROUNDS=3 KEYSTROKES=2000 WARMUP=200 PAYLOAD_DIR="" OUT="" BUILD=1 DEBUG=0
num() { [[ $2 =~ ^[1-9][0-9]*$ ]] || { echo "bench-ssh.sh: $1 needs a positive number" >&2; exit 2; }; }
while (($#)); do
    case "$1" in
        --quick) SIZE_MB=20 ROUNDS=1 KEYSTROKES=200 WARMUP=20 ;;
        --size-mb | --rounds | --keystrokes | --warmup | --payload-dir | --out)
            [[ $# -ge 2 ]] || { usage >&2; exit 2; }
            case "$1" in
                --size-mb) num "$1" "$2"; SIZE_MB=$2 ;;
                --rounds) num "$1" "$2"; ROUNDS=$2 ;;
                --keystrokes) num "$1" "$2"; KEYSTROKES=$2 ;;
                --warmup) [[ $2 =~ ^[0-9]+$ ]] || { echo "bench-ssh.sh: --warmup needs a number" >&2; exit 2; }
                    WARMUP=$2 ;;
                --payload-dir) PAYLOAD_DIR=$2 ;;
                --out) OUT=$2 ;;
            esac
            shift
            ;;
        --no-build) BUILD=0 ;;
        --debug) DEBUG=1 BUILD=0 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "bench-ssh.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
if [[ -n $OUT && $OUT != /* ]]; then OUT="$PWD/$OUT"; fi
if [[ -n $PAYLOAD_DIR && $PAYLOAD_DIR != /* ]]; then PAYLOAD_DIR="$PWD/$PAYLOAD_DIR"; fi

bench_init bench-ssh.sh
if ((DEBUG)) && [[ -z ${HOOP_BENCH_BIN:-} ]]; then BIN=$ROOT/target/debug; fi

for tool in ssh scp ssh-keygen python3; do
    command -v "$tool" >/dev/null || die "$tool is missing (install openssh-client / python3)"
done
KEYSTROKE_PY="$ROOT/scripts/ssh_keystroke.py"

# ------------------------------------------------------------ build

if ((BUILD)); then build_release; fi
for b in hoop-test-issuer hoop-agent hoop; do
    [[ -x $BIN/$b ]] || die "$BIN/$b is missing; run without --no-build (or build it)"
done

LOAD_START=$(load_now)

# ------------------------------------------------------------ the file

# One file of random bytes (nothing on the path compresses it), made once
# and read from the page cache by every run.
PAYLOAD_DIR=${PAYLOAD_DIR:-$TMP}
mkdir -p "$PAYLOAD_DIR"
PAYLOAD="$PAYLOAD_DIR/bench-ssh-payload.$$.bin"
CLEANUP_HOOKS+=("rm -f $(printf %q "$PAYLOAD")")
PAYLOAD_BYTES=$((SIZE_MB * 1024 * 1024))
free_kib=$(df -Pk "$PAYLOAD_DIR" | awk 'NR == 2 { print $4 }')
# Room for the file, a small check copy and 512 MiB to spare.
((free_kib > SIZE_MB * 1024 + 512 * 1024)) ||
    die "$PAYLOAD_DIR has $((free_kib / 1024)) MiB free; the file needs $SIZE_MB MiB and 512 to spare (see --payload-dir)"
PAYLOAD_FS=$(stat -f -c %T "$PAYLOAD_DIR")
[[ $PAYLOAD_FS != tmpfs ]] || log "note: $PAYLOAD_DIR is tmpfs: the file lives in memory"
log "making a $SIZE_MB MiB file in $PAYLOAD_DIR ($PAYLOAD_FS, $((free_kib / 1024)) MiB free)"
head -c "$PAYLOAD_BYTES" /dev/urandom >"$PAYLOAD"
cat "$PAYLOAD" >/dev/null

# ------------------------------------------------------------ sshd

# start_sshd: a private sshd on loopback (start_private_sshd in bench.sh,
# with the internal sftp server, which scp speaks by default).
# Sets SSHD_PID, SSH_PORT, SSH_USER and DIRECT_OPTS (ssh options that
# reach it with the key, checking its host key).
start_sshd() {
    start_private_sshd "PermitRootLogin prohibit-password
Subsystem sftp internal-sftp"
    SSH_PORT=$SSHD_PORT
    SSH_USER=$(id -un)
    DIRECT_OPTS=(-i "$TMP/id_ed25519" -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes
        -o UserKnownHostsFile="$TMP/known_hosts" -p "$SSH_PORT")
    log "sshd on 127.0.0.1:$SSH_PORT ($(ssh -V 2>&1))"
}
start_sshd

# ------------------------------------------------------------ hoop

start_hoop_agent "[[connection]]
name = \"web\"
type = \"ssh\"
address = \"127.0.0.1:$SSH_PORT\"
user = \"$SSH_USER\"
private_key = { file = \"$TMP/id_ed25519\" }
host_key = \"$(cut -d' ' -f1,2 "$TMP/ssh_host_ed25519_key.pub")\"
allow_groups = [\"eng\"]"
HOOP_PORT=$(free_port tcp)
start_hoop_connect web "$HOOP_PORT"
# The ssh line `hoop connect` printed, as a user would paste it: its
# options (port, managed known-hosts file, host key alias, strict checking).
line=$(sed -n 's/.*; connect with: \(ssh .*\)   (Ctrl-C to stop).*/\1/p' "$TMP/connect.out" | head -n 1)
[[ -n $line ]] || die "hoop connect printed no ssh line: $(cat "$TMP/connect.out")"
eval "printed=($line)"
# ssh OPTIONS... HOST: keep the options.
HOOP_OPTS=("${printed[@]:1:${#printed[@]}-2}")
[[ " ${HOOP_OPTS[*]} " == *" -p $HOOP_PORT "* ]] || die "unexpected ssh line from hoop connect: $line"
log "hoop's ssh options: ${HOOP_OPTS[*]}"

# ------------------------------------------------------------ clients

# Every client: no user config, never a prompt, only errors.
COMMON=(-F /dev/null -o BatchMode=yes -o LogLevel=ERROR)
PATHS=(direct hoop)
opts_of() { # PATH: the ssh options of PATH, one a line
    if [[ $1 == direct ]]; then printf '%s\n' "${DIRECT_OPTS[@]}"; else printf '%s\n' "${HOOP_OPTS[@]}"; fi
}
# ssh_to PATH ARGS...: ssh through PATH.
ssh_to() {
    local path=$1 o
    shift
    mapfile -t o < <(opts_of "$path")
    # shellcheck disable=SC2029 # the remote command is the caller's
    ssh "${COMMON[@]}" "${o[@]}" "$@"
}
# scp_to PATH SRC DEST: scp SRC to the host's DEST through PATH.
scp_to() {
    local path=$1 o i
    mapfile -t o < <(opts_of "$path")
    # scp spells ssh's -p PORT as -P PORT.
    for i in "${!o[@]}"; do [[ ${o[i]} != -p ]] || o[i]=-P; done
    scp -q "${COMMON[@]}" "${o[@]}" "$2" "$SSH_USER@127.0.0.1:$3"
}

# Each path must log in, run a command and copy a file intact.
head -c $((1024 * 1024 + 17)) "$PAYLOAD" >"$TMP/check.bin"
declare -A CIPHER
for path in "${PATHS[@]}"; do
    # shellcheck disable=SC2016 # the host's shell computes it
    got=$(ssh_to "$path" -v "$SSH_USER@127.0.0.1" 'echo ok-$((6*7))' 2>"$TMP/check-$path.err") ||
        die "$path: ssh failed: $(tail -n 5 "$TMP/check-$path.err")"
    [[ $got == ok-42 ]] || die "$path: ssh printed $got"
    CIPHER[$path]=$(sed -n 's/.*kex: server->client cipher: \([^ ]*\) MAC: \([^ ]*\).*/\1/p' \
        "$TMP/check-$path.err" | head -n 1)
    scp_to "$path" "$TMP/check.bin" "$TMP/check-$path.bin" 2>"$TMP/scp-check-$path.err" ||
        die "$path: scp failed: $(tail -n 5 "$TMP/scp-check-$path.err")"
    cmp -s "$TMP/check.bin" "$TMP/check-$path.bin" || die "$path: the scp'd copy differs"
done
log "both paths log in and copy a file intact (ciphers: direct ${CIPHER[direct]:--}, to the agent ${CIPHER[hoop]:--})"

# ------------------------------------------------------------ measures

RES="$TMP/results"
mkdir -p "$RES"
record() { echo "$3" >>"$RES/$1.$2"; } # PATH KEY VALUE

scp_run() { # PATH
    local path=$1 t0 t1 mbps
    t0=$(date +%s%N)
    scp_to "$path" "$PAYLOAD" /dev/null 2>"$TMP/scp-$path.err" ||
        die "$path: scp of the file failed: $(tail -n 5 "$TMP/scp-$path.err")"
    t1=$(date +%s%N)
    mbps=$(awk -v b="$PAYLOAD_BYTES" -v a="$t0" -v z="$t1" 'BEGIN { printf "%.1f\n", b / 1e6 / ((z - a) / 1e9) }')
    record "$path" scp_mbps "$mbps"
    log "$path: scp of $SIZE_MB MiB: $mbps MB/s"
}

keystroke_run() { # PATH
    local path=$1 out="$TMP/keys-$1.txt" o
    mapfile -t o < <(opts_of "$path")
    python3 "$KEYSTROKE_PY" --count "$KEYSTROKES" --warmup "$WARMUP" -- \
        env TERM=xterm ssh -tt -e none "${COMMON[@]}" "${o[@]}" "$SSH_USER@127.0.0.1" 'stty raw -echo; echo READY; exec cat' >"$out" 2>"$TMP/keys-$path.err" ||
        die "$path: keystroke run failed: $(tail -n 8 "$TMP/keys-$path.err")"
    record "$path" key_median_ms "$(value "$out" median_ms)"
    record "$path" key_p99_ms "$(value "$out" p99_ms)"
    log "$path: $KEYSTROKES keystrokes: median $(value "$out" median_ms) ms, p99 $(value "$out" p99_ms) ms"
}

# The paths take turns, and the first one turns each round, so that other
# load on the machine hits both alike.
for ((round = 0; round < ROUNDS; round++)); do
    order=("${PATHS[@]}")
    ((round % 2 == 0)) || order=("${PATHS[1]}" "${PATHS[0]}")
    log "round $((round + 1)) of $ROUNDS: ${order[*]}; load $(load_now)"
    for path in "${order[@]}"; do scp_run "$path"; done
done
for path in "${PATHS[@]}"; do keystroke_run "$path"; done

kill -0 "$AGENT_PID" 2>/dev/null || die "hoop-agent exited during the runs"
AUDIT="$AGENT_DIR/audit/audit.jsonl"
AUDIT_LINES=$(wc -l <"$AUDIT")
RECORDINGS=$(find "$AGENT_DIR/recordings" -name '*.cast' 2>/dev/null | wc -l)
AUDIT_VERIFY=$("$BIN/hoop-agent" audit verify --data-dir "$AGENT_DIR" 2>&1 | tail -n 1) || true

# ------------------------------------------------------------ report

# Median of numbers on stdin (the mean of the middle two for an even
# count), with as many decimals as the input has.
median() {
    sort -g | awk '{ v[NR] = $1; split($1, p, "."); if (length(p[2]) > d) d = length(p[2]) }
        END {
            if (!NR) { print "-"; exit }
            m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            printf "%.*f\n", d, m
        }'
}
get() { # PATH KEY [best]: the median (or the highest) of KEY's values, or "-"
    [[ -s $RES/$1.$2 ]] || { echo -; return; }
    if [[ ${3:-} == best ]]; then sort -g "$RES/$1.$2" | tail -n 1; else median <"$RES/$1.$2"; fi
}
all() { # PATH KEY: every value of KEY for PATH, comma-separated
    if [[ -s $RES/$1.$2 ]]; then paste -sd, "$RES/$1.$2" | sed 's/,/, /g'; else echo -; fi
}
minus() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-") print "-"; else printf "%.3f\n", a - b }'; }

SCP_BEST_D=$(get direct scp_mbps best) SCP_BEST_H=$(get hoop scp_mbps best)
SCP_MED_D=$(get direct scp_mbps) SCP_MED_H=$(get hoop scp_mbps)
KEY_MED_D=$(get direct key_median_ms) KEY_MED_H=$(get hoop key_median_ms)
KEY_P99_D=$(get direct key_p99_ms) KEY_P99_H=$(get hoop key_p99_ms)
ADDED=$(minus "$KEY_MED_H" "$KEY_MED_D")
ADDED_P99=$(minus "$KEY_P99_H" "$KEY_P99_D")
SCP_RATIO=$(ratio "$SCP_MED_H" "$SCP_MED_D")

rows() {
    echo "| figure | direct | hoop | hoop/direct | target | result |"
    echo "| --- | ---: | ---: | ---: | --- | --- |"
    echo "| scp $SIZE_MB MiB, MB/s, best of $ROUNDS | $SCP_BEST_D | $SCP_BEST_H | $(ratio "$SCP_BEST_H" "$SCP_BEST_D") | | |"
    echo "| scp $SIZE_MB MiB, MB/s, median of $ROUNDS | $SCP_MED_D | $SCP_MED_H | $SCP_RATIO | hoop/direct ≥ 0.8 | $(verdict "$SCP_RATIO" 0.8 higher) |"
    echo "| keystroke round trip, median ms ($KEYSTROKES) | $KEY_MED_D | $KEY_MED_H | $(ratio "$KEY_MED_H" "$KEY_MED_D") | | |"
    echo "| keystroke round trip, p99 ms ($KEYSTROKES) | $KEY_P99_D | $KEY_P99_H | $(ratio "$KEY_P99_H" "$KEY_P99_D") | | |"
    echo "| added keystroke latency ms (hoop − direct, median) | | $ADDED | | < 0.3 ms | $(verdict "$ADDED" 0.3 lower) |"
    echo "| added keystroke latency ms (hoop − direct, p99) | | $ADDED_P99 | | | |"
}

report() {
    local cpu warnings
    cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
    echo "SSH benchmark, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "- command: scripts/bench-ssh.sh${ARGS:+ $ARGS}"
    echo "- binaries: $BIN"
    echo "- machine: $(nproc) cores (${cpu:-unknown cpu}), Linux $(uname -r)"
    echo "- ssh: $(ssh -V 2>&1); cipher direct ${CIPHER[direct]:--}, ssh to the agent ${CIPHER[hoop]:--}"
    echo "- scp: $SIZE_MB MiB of random bytes from the page cache ($PAYLOAD_FS) to /dev/null on the host (sftp protocol, internal-sftp), $ROUNDS run(s) per path, taking turns"
    echo "- keystrokes: ssh -tt, remote \`stty raw -echo; cat\`, one byte at a time, $WARMUP unmeasured then $KEYSTROKES measured per path"
    echo "- hoop: ssh connection, the agent logs in with its key; audit on ($AUDIT_LINES audit lines, $RECORDINGS recordings); audit verify: $AUDIT_VERIFY"
    warnings=$(agent_warnings)
    echo "- hoop-agent warnings: ${warnings:-none}"
    echo "- load average (1, 5, 15 min): $LOAD_START at the start, $(load_now) at the end"
    echo
    rows
    if ((ROUNDS > 1)); then
        echo
        echo "Every scp run (MB/s): direct $(all direct scp_mbps); hoop $(all hoop scp_mbps)."
    fi
}

report >"$TMP/report.md"
echo
cat "$TMP/report.md"
echo
echo "Rows for BENCHMARKS.md (## SSH, ### Results):"
echo
echo "#### \`scripts/bench-ssh.sh${ARGS:+ $ARGS}\`, $(date -u '+%Y-%m-%d %H:%M') UTC"
echo
rows
if [[ -n $OUT ]]; then
    cp "$TMP/report.md" "$OUT"
    log "results written to $OUT"
fi
