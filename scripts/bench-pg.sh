#!/usr/bin/env bash
# PostgreSQL benchmark (issue 4): pgbench and psql against a throwaway
# PostgreSQL 15 cluster four ways: directly, through `ssh -N -L`, through
# pgbouncer in session mode and through hoop (a `type = "postgres"`
# connection: the agent logs in to PostgreSQL itself and audits every
# statement; the client connects without a password). Prints select-only
# TPS with 8 clients, single-client latency, `\copy` throughput and
# connection setup, with ratios and PASS/FAIL against the targets.
#
# Everything listens on 127.0.0.1 on a free port and is stopped on exit.
# The targets are informative: the script exits 0 unless something broke.
# Helpers (processes, ports, sshd + ssh -L, the hoop agent) come from
# scripts/bench.sh.
#
#   scripts/bench-pg.sh [--quick] [--duration S] [--setups N] [--copies N]
#                       [--rounds N] [--scale N] [--out FILE] [--hoop-tcp]
#                       [--no-ssh] [--no-pgbouncer] [--no-hoop] [--no-build] [--serve]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=bench.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench.sh"

# ============================================================ helpers

# Sourced (as scripts/bench-mask.sh does), this script only defines the
# helpers down to the next rule: the PostgreSQL cluster and median.

# pg_init: checks the PostgreSQL binaries and sets PG_BIN, PG_VERSION,
# as_pg, own, random_hex and PG_CLEAN_ENV. Call it after bench_init.
pg_init() {
    local b
    # Debian's /usr/bin/psql wrapper costs ~20 ms a start: use the binaries.
    PG_BIN=${HOOP_PG_BIN:-/usr/lib/postgresql/15/bin}
    for b in initdb pg_ctl postgres psql pgbench; do
        [[ -x $PG_BIN/$b ]] || die "$PG_BIN/$b is missing (install postgresql-15, or set HOOP_PG_BIN)"
    done
    PG_VERSION=$("$PG_BIN/postgres" --version)

    # Run as root, the server and pgbouncer run as `postgres` (both refuse
    # root); run as anyone else, as that user.
    if ((EUID == 0)); then
        id postgres >/dev/null 2>&1 || die "running as root needs a postgres user to run the server as"
        as_pg() { runuser -u postgres -- "$@"; }
        # They must reach their files under $TMP.
        chmod 711 "$TMP"
    else
        as_pg() { "$@"; }
    fi
    # own PATH...: hands PATH to the user as_pg runs as.
    own() { if ((EUID == 0)); then chown -R postgres: "$@"; fi; }

    random_hex() { od -An -tx1 -N16 /dev/urandom | tr -d ' \n'; }

    # Every client starts from a clean libpq environment: no inherited PG*
    # variables or password file, no TLS and no GSS encryption on any path.
    PG_CLEAN_ENV=(env -u PGHOST -u PGHOSTADDR -u PGPORT -u PGUSER -u PGDATABASE
        -u PGPASSWORD -u PGPASSFILE -u PGSERVICE -u PGSERVICEFILE -u PGOPTIONS
        -u PGAPPNAME -u PGSSLMODE -u PGREQUIRESSL -u PGCHANNELBINDING
        -u PGTARGETSESSIONATTRS -u PGCONNECT_TIMEOUT -u PSQLRC
        PGSSLMODE=disable PGGSSENCMODE=disable PGCONNECT_TIMEOUT=10 PGPASSFILE="$TMP/no-pgpass")
}

# start_pg_cluster: a throwaway cluster (fsync off, scram-sha-256) on a free
# port, stopped on exit, with a role and database `bench`. Sets PG_DIR,
# PG_PORT, PG_SUPER_PW, BENCH_PW, pg_ctl and super_psql.
start_pg_cluster() {
    local attempt port
    PG_DIR="$TMP/pg"
    mkdir -p "$PG_DIR"
    PG_SUPER_PW=$(random_hex)
    BENCH_PW=$(random_hex)
    echo "$PG_SUPER_PW" >"$PG_DIR/pw"
    own "$PG_DIR"
    as_pg "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --pwfile="$PG_DIR/pw" \
        --auth=scram-sha-256 -E UTF8 --locale=C.UTF-8 -N >"$TMP/initdb.out" 2>"$TMP/initdb.err" ||
        die "initdb failed: $(tail -n 5 "$TMP/initdb.err")"
    rm -f "$PG_DIR/pw"
    # fsync and full-page writes off: this is a throwaway benchmark cluster,
    # and the figures are about the path, not the disk (only loading the
    # data writes). shared_buffers holds the whole data set (~160 MB at
    # pgbench scale 10, ~180 MB for bench-mask.sh's 1M rows).
    cat >>"$PG_DIR/data/postgresql.conf" <<EOF

# scripts/bench-pg.sh
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PG_DIR'
fsync = off
full_page_writes = off
synchronous_commit = off
shared_buffers = 256MB
max_connections = 100
EOF
    cat >"$PG_DIR/data/pg_hba.conf" <<EOF
local all all scram-sha-256
host all all 127.0.0.1/32 scram-sha-256
EOF
    own "$PG_DIR"

    pg_ctl() { as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 "$@"; }
    # A free port can be taken before the server binds it: try a few.
    PG_PORT=""
    for attempt in 1 2 3 4 5; do
        port=$(free_port tcp)
        if pg_ctl -o "-p $port" start >"$TMP/pg_ctl.out" 2>&1; then
            PG_PORT=$port
            CLEANUP_HOOKS+=("pg_ctl -m immediate stop >/dev/null 2>&1")
            break
        fi
        log "PostgreSQL did not start on port $port (attempt $attempt)"
    done
    [[ -n $PG_PORT ]] || die "PostgreSQL did not start: $(tail -n 5 "$PG_DIR/server.log" 2>/dev/null)"
    log "PostgreSQL on 127.0.0.1:$PG_PORT ($PG_VERSION)"

    super_psql() {
        "${PG_CLEAN_ENV[@]}" PGPASSWORD="$PG_SUPER_PW" "$PG_BIN/psql" -X -q -w -v ON_ERROR_STOP=1 \
            -h 127.0.0.1 -p "$PG_PORT" -U postgres "$@"
    }
    super_psql -d postgres -c "create role bench login password '$BENCH_PW'" \
        -c "create database bench owner bench"
}

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

# paired_median A B: the median of A's values divided by B's, line by
# line (the same rounds), or "-": the machine's drift over a run (rounds
# here moved by 30 %) cancels out of each round's own ratio.
paired_median() {
    if [[ -s $1 && -s $2 ]]; then
        paste "$1" "$2" | awk '$2 > 0 { printf "%.4f\n", $1 / $2 }' | median
    else
        echo -
    fi
}

# Sourced for the helpers above: stop here.
[[ ${BASH_SOURCE[0]} == "$0" ]] || return 0

# ============================================================ bench-pg.sh

usage() {
    cat <<'EOF'
usage: scripts/bench-pg.sh [--quick] [--duration S] [--setups N] [--copies N]
                           [--rounds N] [--scale N] [--out FILE] [--hoop-tcp]
                           [--no-ssh] [--no-pgbouncer] [--no-hoop] [--no-build] [--serve]
  --quick         smoke test: 3 s pgbench runs, 30 setups, 1 \copy per path
  --duration S    seconds of each pgbench run (default 15)
  --setups N      sequential `psql -c 'select 1'` per path (default 200)
  --copies N      \copy runs per path; the median counts (default 3)
  --rounds N      repeat the whole set N times (path order rotated each
                  round); the table shows the median of the rounds (default 1)
  --scale N       pgbench scale (default 10: 1M rows in pgbench_accounts)
  --out FILE      also write the results table (markdown) to FILE
  --hoop-tcp      also measure hoop as a plain `type = "tcp"` relay to the
                  same server (the client logs in with the password; no
                  statement audit): what the tunnel costs without the
                  PostgreSQL connector
  --no-ssh        skip ssh -L
  --no-pgbouncer  skip pgbouncer
  --no-hoop       skip hoop
  --no-build      use the release binaries already in target/release
  --serve         set everything up, print how to reach each path, and wait
                  until interrupted instead of measuring (for profiling)
EOF
}

ARGS="$*"
DURATION=15 SETUPS=200 COPIES=3 ROUNDS=1 SCALE=10 OUT=""
RUN_SSH=1 RUN_PGB=1 RUN_HOOP=1 RUN_HOOP_TCP=0 BUILD=1 SERVE=0
num() { [[ $2 =~ ^[1-9][0-9]*$ ]] || { echo "bench-pg.sh: $1 needs a positive number" >&2; exit 2; }; }
while (($#)); do
    case "$1" in
        --quick) DURATION=3 SETUPS=30 COPIES=1 ;;
        --duration | --setups | --copies | --rounds | --scale | --out)
            [[ $# -ge 2 ]] || { usage >&2; exit 2; }
            case "$1" in
                --duration) num "$1" "$2"; DURATION=$2 ;;
                --setups) num "$1" "$2"; SETUPS=$2 ;;
                --copies) num "$1" "$2"; COPIES=$2 ;;
                --rounds) num "$1" "$2"; ROUNDS=$2 ;;
                --scale) num "$1" "$2"; SCALE=$2 ;;
                --out) OUT=$2 ;;
            esac
            shift
            ;;
        --no-ssh) RUN_SSH=0 ;;
        --no-pgbouncer) RUN_PGB=0 ;;
        --no-hoop) RUN_HOOP=0 ;;
        --hoop-tcp) RUN_HOOP_TCP=1 ;;
        --serve) SERVE=1 ;;
        --no-build) BUILD=0 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "bench-pg.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
if [[ -n $OUT && $OUT != /* ]]; then OUT="$PWD/$OUT"; fi

bench_init bench-pg.sh

pg_init

# ------------------------------------------------------------ build

if ((BUILD && RUN_HOOP)); then build_release; fi

LOAD_START=$(load_now)

# ------------------------------------------------------------ PostgreSQL

start_pg_cluster
log "pgbench -i -s $SCALE"
"${PG_CLEAN_ENV[@]}" PGPASSWORD="$BENCH_PW" "$PG_BIN/pgbench" -i -q -s "$SCALE" \
    -h 127.0.0.1 -p "$PG_PORT" -U bench bench >"$TMP/pgbench-init.out" 2>&1 ||
    die "pgbench -i failed: $(tail -n 5 "$TMP/pgbench-init.out")"
# Every run reads from shared buffers, none from the page cache.
super_psql -d bench -At -c "create extension if not exists pg_prewarm" \
    -c "select pg_prewarm(c) from unnest(array['pgbench_accounts', 'pgbench_accounts_pkey',
        'pgbench_branches', 'pgbench_tellers']::regclass[]) c" >/dev/null

COPY_SQL="\\copy (select * from pgbench_accounts) to '/dev/null'"
COPY_BYTES=$("${PG_CLEAN_ENV[@]}" PGPASSWORD="$BENCH_PW" "$PG_BIN/psql" -X -w -h 127.0.0.1 \
    -p "$PG_PORT" -U bench -d bench -c "copy (select * from pgbench_accounts) to stdout" | wc -c)
log "COPY of pgbench_accounts: $COPY_BYTES bytes"

# ------------------------------------------------------------ paths

# PATHS: the paths measured, in order; PORT[path]: the local port clients
# use; CPU_PIDS[path]: the processes of the path whose CPU time is counted.
PATHS=(direct)
declare -A PORT=([direct]=$PG_PORT) CPU_PIDS=([direct]="")

SSH_CIPHER=-
if ((RUN_SSH)); then
    start_ssh_forward "127.0.0.1:$PG_PORT"
    PATHS+=(ssh)
    PORT[ssh]=$FWD_PORT
    CPU_PIDS[ssh]="$SSH_PID $SSHD_PID"
fi

PGB_VERSION=-
if ((RUN_PGB)); then
    PGB=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
    if [[ ! -x $PGB ]] && ((EUID == 0)) && command -v apt-get >/dev/null; then
        log "pgbouncer not found: installing it with apt-get"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >&2
        PGB=/usr/sbin/pgbouncer
    fi
    [[ -x $PGB ]] || die "pgbouncer not found (install it, or pass --no-pgbouncer)"
    PGB_VERSION=$("$PGB" --version | head -n 1)
    PGB_DIR="$TMP/pgbouncer"
    mkdir -p "$PGB_DIR"
    PGB_PORT=$(free_port tcp)
    # The role's SCRAM secret, as pg_authid has it: pgbouncer checks the
    # client's proof with it and logs in to the server with the keys the
    # client's exchange yields (no plain password stored).
    BENCH_SECRET=$(super_psql -d postgres -At -c "select rolpassword from pg_authid where rolname = 'bench'")
    printf '"bench" "%s"\n' "$BENCH_SECRET" >"$PGB_DIR/userlist.txt"
    cat >"$PGB_DIR/pgbouncer.ini" <<EOF
[databases]
bench = host=127.0.0.1 port=$PG_PORT dbname=bench

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB_PORT
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $PGB_DIR/userlist.txt
pool_mode = session
max_client_conn = 200
default_pool_size = 20
ignore_startup_parameters = extra_float_digits
log_connections = 0
log_disconnections = 0
EOF
    chmod 600 "$PGB_DIR/userlist.txt"
    own "$PGB_DIR"
    start pgbouncer as_pg "$PGB" "$PGB_DIR/pgbouncer.ini"
    PGB_PID=$LAST_PID
    wait_port "$PGB_PORT" "$PGB_PID" pgbouncer
    log "pgbouncer (session mode) on 127.0.0.1:$PGB_PORT: $PGB_VERSION"
    PATHS+=(pgbouncer)
    PORT[pgbouncer]=$PGB_PORT
    CPU_PIDS[pgbouncer]=$PGB_PID
fi

((RUN_HOOP)) || RUN_HOOP_TCP=0
if ((RUN_HOOP)); then
    HOOP_CONNECTIONS=$(cat <<EOF
[[connection]]
name = "pg"
type = "postgres"
address = "127.0.0.1:$PG_PORT"
database = "bench"
user = "bench"
password = { env = "BENCH_PGPASSWORD" }
tls = "disable"
allow_groups = ["eng"]
EOF
    )
    if ((RUN_HOOP_TCP)); then
        HOOP_CONNECTIONS+=$'\n\n'$(cat <<EOF
[[connection]]
name = "pgtcp"
type = "tcp"
address = "127.0.0.1:$PG_PORT"
allow_groups = ["eng"]
EOF
        )
    fi
    # The password reaches only the agent's environment.
    start_hoop_agent "$HOOP_CONNECTIONS" BENCH_PGPASSWORD="$BENCH_PW"
    HOOP_PORT=$(free_port tcp)
    start_hoop_connect pg "$HOOP_PORT"
    PATHS+=(hoop)
    PORT[hoop]=$HOOP_PORT
    CPU_PIDS[hoop]="$AGENT_PID $CONNECT_PID"
    if ((RUN_HOOP_TCP)); then
        PORT[hoop_tcp]=$(free_port tcp)
        start_hoop_connect pgtcp "${PORT[hoop_tcp]}" connect-tcp
        PATHS+=(hoop_tcp)
        CPU_PIDS[hoop_tcp]="$AGENT_PID $CONNECT_PID"
    fi
fi

# client PATH CMD ARGS...: runs a libpq client (psql, pgbench) against PATH,
# as user bench on database bench; with the password except through hoop,
# which must let it in without one.
client() {
    local path=$1 prog=$2 pw=()
    shift 2
    [[ $path == hoop ]] || pw=(PGPASSWORD="$BENCH_PW")
    "${PG_CLEAN_ENV[@]}" "${pw[@]}" "$PG_BIN/$prog" -h 127.0.0.1 -p "${PORT[$path]}" -U bench "$@" </dev/null
}

# Each path must really reach the database, and hoop without a password.
for path in "${PATHS[@]}"; do
    got=$(client "$path" psql -X -w -At -d bench -c "select current_user || '/' || current_database()" 2>&1) ||
        die "$path: psql failed: $got"
    [[ $got == bench/bench ]] || die "$path: expected bench/bench, got $got"
done
log "all paths answer as bench/bench (hoop without a password)"

# --serve: leave everything up for profiling by hand.
if ((SERVE)); then
    for path in "${PATHS[@]}"; do
        pass="PGPASSWORD=$BENCH_PW "
        [[ $path != hoop ]] || pass=""
        echo "$path: ${pass}PGSSLMODE=disable $PG_BIN/pgbench -h 127.0.0.1 -p ${PORT[$path]} -U bench -n -S -T 15 -c 8 -j 2 bench" \
            "${CPU_PIDS[$path]:+(processes: ${CPU_PIDS[$path]})}"
    done
    if ((RUN_HOOP)); then echo "hoop-agent data_dir: $AGENT_DIR"; fi
    log "serving until interrupted (Ctrl-C)"
    # In the background, so that a signal ends the wait (and runs cleanup)
    # at once.
    start serve sleep infinity
    wait "$LAST_PID"
fi

# ------------------------------------------------------------ measures

RES="$TMP/results"
mkdir -p "$RES"
# record PATH KEY VALUE: one more value of KEY for PATH.
record() { echo "$3" >>"$RES/$1.$2"; }

path_cpu() { # PATH: CPU ticks of the path's processes so far
    local pid total=0
    for pid in ${CPU_PIDS[$1]}; do total=$((total + $(tree_cpu_ticks "$pid"))); done
    echo "$total"
}
TICK=$(getconf CLK_TCK)

# pgbench_run PATH NAME ARGS...: a select-only run; records tps and latency.
pgbench_run() {
    local path=$1 name=$2 out cpu0 cpu1 tps lat
    shift 2
    out="$TMP/$path.$name.pgbench"
    cpu0=$(path_cpu "$path")
    client "$path" pgbench -n -S -T "$DURATION" "$@" bench >"$out" 2>&1 ||
        die "$path: pgbench $* failed: $(tail -n 5 "$out")"
    cpu1=$(path_cpu "$path")
    tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time).*/\1/p' "$out")
    [[ -z $tps ]] || tps=$(printf '%.1f' "$tps")
    lat=$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' "$out")
    [[ -n $tps && -n $lat ]] || die "$path: cannot read pgbench's output: $(cat "$out")"
    record "$path" "${name}_tps" "$tps"
    record "$path" "${name}_latency_ms" "$lat"
    # CPU of the path's own processes per transaction, in µs.
    record "$path" "${name}_cpu_us" "$(awk -v c=$((cpu1 - cpu0)) -v hz="$TICK" -v t="$tps" -v d="$DURATION" \
        'BEGIN { printf "%.1f\n", c / hz * 1e6 / (t * d) }')"
    log "$path: pgbench -S $* -T $DURATION: tps $tps, latency $lat ms"
}

copy_run() { # PATH
    local path=$1 out ms mbps i cpu0 cpu1 best=() cpus=()
    for ((i = 0; i < COPIES; i++)); do
        out="$TMP/$path.copy"
        cpu0=$(path_cpu "$path")
        client "$path" psql -X -w -q -v ON_ERROR_STOP=1 -d bench -c '\timing on' -c "$COPY_SQL" >"$out" 2>&1 ||
            die "$path: \\copy failed: $(tail -n 5 "$out")"
        cpu1=$(path_cpu "$path")
        ms=$(sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' "$out" | tail -n 1)
        [[ -n $ms ]] || die "$path: no timing in psql's output: $(cat "$out")"
        best+=("$(awk -v b="$COPY_BYTES" -v ms="$ms" 'BEGIN { printf "%.1f\n", b / 1e6 / (ms / 1000) }')")
        cpus+=("$(awk -v c=$((cpu1 - cpu0)) -v hz="$TICK" -v b="$COPY_BYTES" \
            'BEGIN { printf "%.2f\n", c / hz * 1000 / (b / 1e6) }')")
    done
    mbps=$(printf '%s\n' "${best[@]}" | median)
    record "$path" copy_mbps "$mbps"
    record "$path" copy_cpu_ms_per_mb "$(printf '%s\n' "${cpus[@]}" | median)"
    log "$path: \\copy ($COPIES runs): ${best[*]} MB/s"
}

setup_run() { # PATH
    local path=$1 t0 t1 i cpu0 cpu1 mean
    cpu0=$(path_cpu "$path")
    t0=$(date +%s%N)
    for ((i = 0; i < SETUPS; i++)); do
        client "$path" psql -X -w -q -At -d bench -c 'select 1' >/dev/null ||
            die "$path: psql -c 'select 1' failed"
    done
    t1=$(date +%s%N)
    cpu1=$(path_cpu "$path")
    mean=$(awk -v a="$t0" -v b="$t1" -v n="$SETUPS" 'BEGIN { printf "%.2f\n", (b - a) / 1e6 / n }')
    record "$path" setup_ms "$mean"
    record "$path" setup_cpu_us "$(awk -v c=$((cpu1 - cpu0)) -v hz="$TICK" -v n="$SETUPS" \
        'BEGIN { printf "%.0f\n", c / hz * 1e6 / n }')"
    log "$path: $SETUPS × psql -c 'select 1': mean $mean ms"
}

# A short direct run first: the server's caches and plans settle.
client direct pgbench -n -S -T 2 -c 8 -j 2 bench >/dev/null 2>&1 || die "warm-up pgbench failed"

# Metric by metric, all paths back to back, so that other load on the
# machine hits the paths of one figure alike; the order of the paths
# turns each round.
for ((round = 0; round < ROUNDS; round++)); do
    order=()
    for ((i = 0; i < ${#PATHS[@]}; i++)); do order+=("${PATHS[(i + round) % ${#PATHS[@]}]}"); done
    log "round $((round + 1)) of $ROUNDS: ${order[*]}; load $(load_now)"
    for path in "${order[@]}"; do pgbench_run "$path" c8 -c 8 -j 2; done
    for path in "${order[@]}"; do pgbench_run "$path" c1 -c 1 -j 1; done
    for path in "${order[@]}"; do copy_run "$path"; done
    for path in "${order[@]}"; do setup_run "$path"; done
done
if ((RUN_HOOP)); then
    kill -0 "$AGENT_PID" 2>/dev/null || die "hoop-agent exited during the runs"
    AUDIT_LINES=$(wc -l <"$AGENT_DIR/audit/audit.jsonl")
    AUDIT_STATEMENTS=$(grep -c '"statement"' "$AGENT_DIR/audit/audit.jsonl" || true)
    AUDIT_VERIFY=$("$BIN/hoop-agent" audit verify --data-dir "$AGENT_DIR" 2>&1 | tail -n 1) || true
fi

# ------------------------------------------------------------ report

get() { # PATH KEY: the median of KEY's values for PATH, or "-"
    if [[ -s $RES/$1.$2 ]]; then median <"$RES/$1.$2"; else echo -; fi
}
all() { # PATH KEY: every value of KEY for PATH, comma-separated
    if [[ -s $RES/$1.$2 ]]; then paste -sd, "$RES/$1.$2" | sed 's/,/, /g'; else echo -; fi
}
# verdict_ratio A B MIN|MAX BOUND: PASS when A/B is at least (MIN) or at
# most (MAX) BOUND.
verdict_ratio() {
    local r
    r=$(ratio "$1" "$2")
    if [[ $3 == min ]]; then verdict "$r" "$4" higher; else verdict "$r" "$4" lower; fi
}

row() { # label key target-text verdict
    local d s p h
    d=$(get direct "$2") s=$(get ssh "$2") p=$(get pgbouncer "$2") h=$(get hoop "$2")
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$d" "$s" "$p" "$h" \
        "$(ratio "$s" "$d")" "$(ratio "$p" "$d")" "$(ratio "$h" "$d")" "$(ratio "$h" "$s")" \
        "$(ratio "$h" "$p")" "$3" "$4"
}
cpu_row() { # label key
    printf '| %s | %s | %s | %s | %s |\n' "$1" "$(get direct "$2")" "$(get ssh "$2")" \
        "$(get pgbouncer "$2")" "$(get hoop "$2")"
}

report() {
    local cpu
    cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
    echo "PostgreSQL benchmark, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "- command: scripts/bench-pg.sh${ARGS:+ $ARGS}"
    echo "- machine: $(nproc) cores (${cpu:-unknown cpu}), Linux $(uname -r)"
    echo "- server: $PG_VERSION, pgbench scale $SCALE, fsync/full_page_writes/synchronous_commit off, shared_buffers 256MB, data prewarmed"
    echo "- runs: pgbench -S -T $DURATION (-c 8 -j 2; -c 1 -j 1), $COPIES × \\copy of pgbench_accounts ($COPY_BYTES bytes, median), $SETUPS × psql -X -c 'select 1'; $ROUNDS round(s), median shown"
    if ((RUN_SSH)); then echo "- ssh: $(ssh -V 2>&1), cipher ${SSH_CIPHER:--}"; fi
    if ((RUN_PGB)); then echo "- pgbouncer: $PGB_VERSION, session mode, scram-sha-256"; fi
    if ((RUN_HOOP)); then
        echo "- hoop: postgres connection, tls = \"disable\" to the server, audit on: $AUDIT_LINES audit lines ($AUDIT_STATEMENTS statement events); audit verify: $AUDIT_VERIFY"
        local warnings
        warnings=$(agent_warnings)
        echo "- hoop-agent warnings: ${warnings:-none}"
    fi
    echo "- load average (1, 5, 15 min): $LOAD_START at the start, $(load_now) at the end"
    echo
    echo "| figure | direct | ssh -L | pgbouncer | hoop | ssh/direct | pgbouncer/direct | hoop/direct | hoop/ssh | hoop/pgbouncer | target | result |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"
    row "TPS, 8 clients" c8_tps "hoop/direct ≥ 0.6" \
        "$(verdict_ratio "$(get hoop c8_tps)" "$(get direct c8_tps)" min 0.6)"
    row "latency ms, 1 client" c1_latency_ms "hoop ≤ 0.17 ms" "$(verdict "$(get hoop c1_latency_ms)" 0.17 lower)"
    row "TPS, 1 client" c1_tps "" ""
    row "\\copy MB/s" copy_mbps "hoop/direct ≥ 0.95" \
        "$(verdict_ratio "$(get hoop copy_mbps)" "$(get direct copy_mbps)" min 0.95)"
    row "setup ms (psql -c 'select 1')" setup_ms "hoop/direct ≤ 1.3" \
        "$(verdict_ratio "$(get hoop setup_ms)" "$(get direct setup_ms)" max 1.3)"
    echo
    echo "Also wanted: hoop/ssh TPS ≥ 1.5: $(verdict_ratio "$(get hoop c8_tps)" "$(get ssh c8_tps)" min 1.5)" \
        "($(ratio "$(get hoop c8_tps)" "$(get ssh c8_tps)")); hoop/pgbouncer TPS ≥ 1.0:" \
        "$(verdict_ratio "$(get hoop c8_tps)" "$(get pgbouncer c8_tps)" min 1.0)" \
        "($(ratio "$(get hoop c8_tps)" "$(get pgbouncer c8_tps)"))."
    echo
    echo "CPU time of the path's own processes (ssh + sshd; pgbouncer; hoop-agent + hoop connect), user + system:"
    echo
    echo "| CPU | direct | ssh -L | pgbouncer | hoop |"
    echo "| --- | ---: | ---: | ---: | ---: |"
    cpu_row "µs per transaction, 8 clients" c8_cpu_us
    cpu_row "µs per transaction, 1 client" c1_cpu_us
    cpu_row "ms per MB of \\copy" copy_cpu_ms_per_mb
    cpu_row "µs per connection setup" setup_cpu_us
    if ((ROUNDS > 1)); then
        echo
        echo "Every round (path: TPS 8 clients; latency ms; \\copy MB/s; setup ms):"
        echo
        for path in "${PATHS[@]}"; do
            echo "- ${path/hoop_tcp/hoop (tcp)}: $(all "$path" c8_tps); $(all "$path" c1_latency_ms); $(all "$path" copy_mbps); $(all "$path" setup_ms)"
        done
    fi
    if ((RUN_HOOP_TCP)); then
        echo
        echo "hoop as a plain tcp relay to the same server (--hoop-tcp: the client logs in with the password itself; no statement parsing or audit):"
        echo
        echo "| figure | hoop (postgres) | hoop (tcp) | postgres/tcp |"
        echo "| --- | ---: | ---: | ---: |"
        local key label
        for key in c8_tps c1_latency_ms c1_tps copy_mbps setup_ms c8_cpu_us c1_cpu_us copy_cpu_ms_per_mb setup_cpu_us; do
            case $key in
                c8_tps) label="TPS, 8 clients" ;; c1_latency_ms) label="latency ms, 1 client" ;;
                c1_tps) label="TPS, 1 client" ;; copy_mbps) label="\\copy MB/s" ;;
                setup_ms) label="setup ms" ;; c8_cpu_us) label="CPU µs per transaction, 8 clients" ;;
                c1_cpu_us) label="CPU µs per transaction, 1 client" ;;
                copy_cpu_ms_per_mb) label="CPU ms per MB of \\copy" ;; setup_cpu_us) label="CPU µs per setup" ;;
            esac
            echo "| $label | $(get hoop "$key") | $(get hoop_tcp "$key") | $(ratio "$(get hoop "$key")" "$(get hoop_tcp "$key")") |"
        done
    fi
    for skipped in ssh pgbouncer hoop; do
        [[ " ${PATHS[*]} " == *" $skipped "* ]] || { echo; echo "$skipped was skipped."; }
    done
}

report >"$TMP/report.md"
echo
cat "$TMP/report.md"
if [[ -n $OUT ]]; then
    cp "$TMP/report.md" "$OUT"
    log "table written to $OUT"
fi
