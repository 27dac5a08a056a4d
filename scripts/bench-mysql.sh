#!/usr/bin/env bash
# MySQL benchmark (issue 6): point selects with mysqlslap and a bulk
# `select *` with the mariadb client against a throwaway MariaDB server
# four ways in one run: directly, through `ssh -N -L`, through hoop (a
# `type = "mysql"` connection: the agent logs in to the server itself and
# audits every statement; the client connects without a password) and
# through hoop with masking on (an identical connection with
# [connection.mask]). Prints queries/s with 8 clients, single-client
# latency, the bulk wall time and the CPU of each path's processes, with
# ratios and PASS/FAIL against the targets; checks once that the unmasked
# bulk output is the direct one byte for byte and that the masked one
# holds no sample value.
#
# Everything listens on 127.0.0.1 on a free port and is stopped on exit.
# The targets are informative: the script exits 0 unless something broke.
# Helpers come from scripts/bench.sh (processes, ports, sshd + ssh -L, the
# hoop agent) and scripts/bench-pg.sh (median).
#
#   scripts/bench-mysql.sh [--quick] [--rows N] [--queries N] [--rounds N]
#                          [--out FILE] [--no-build]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=bench-pg.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-pg.sh"

usage() {
    cat <<'EOF'
usage: scripts/bench-mysql.sh [--quick] [--rows N] [--queries N] [--rounds N]
                              [--out FILE] [--no-build]
  --quick       smoke test: 100000 rows, 20000 point selects, 1 round
  --rows N      rows in the table (default 1000000)
  --queries N   point selects per run with 8 clients (default 200000; the
                single-client run does a tenth)
  --rounds N    repeat every measure N times, the order of the paths
                rotated each round; the table shows the median (default 3)
  --out FILE    also write the results table (markdown) to FILE
  --no-build    use the release binaries already in target/release (or
                $HOOP_BENCH_BIN)
EOF
}

ARGS="$*"
ROWS=1000000 QUERIES=200000 ROUNDS=3 OUT="" BUILD=1
num() { [[ $2 =~ ^[1-9][0-9]*$ ]] || { echo "bench-mysql.sh: $1 needs a positive number" >&2; exit 2; }; }
while (($#)); do
    case "$1" in
        --quick) ROWS=100000 QUERIES=20000 ROUNDS=1 ;;
        --rows | --queries | --rounds | --out)
            [[ $# -ge 2 ]] || { usage >&2; exit 2; }
            case "$1" in
                --rows) num "$1" "$2"; ROWS=$2 ;;
                --queries) num "$1" "$2"; QUERIES=$2 ;;
                --rounds) num "$1" "$2"; ROUNDS=$2 ;;
                --out) OUT=$2 ;;
            esac
            shift
            ;;
        --no-build) BUILD=0 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "bench-mysql.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
if [[ -n $OUT && $OUT != /* ]]; then OUT="$PWD/$OUT"; fi
CLIENTS=8
QUERIES_C1=$(((QUERIES + 9) / 10))

bench_init bench-mysql.sh

# ------------------------------------------------------------ programs

# A server binary from Debian's places, else from PATH.
server_bin() {
    local d
    for d in /usr/sbin /usr/bin; do [[ -x $d/$1 ]] && { echo "$d/$1"; return; }; done
    command -v "$1" || die "$1 not found (install mariadb-server)"
}
MARIADBD=$(server_bin mariadbd)
INSTALL_DB=$(server_bin mariadb-install-db)
MY_CLIENT=$(command -v mariadb || command -v mysql || die "no mariadb client (install mariadb-client)")
SLAP=$(command -v mariadb-slap || command -v mysqlslap || die "no mariadb-slap/mysqlslap (install mariadb-client)")
"$MY_CLIENT" --version | grep -q MariaDB || die "$MY_CLIENT is not MariaDB's client (its flags are assumed)"
MY_VERSION=$("$MARIADBD" --version | sed 's/^.*Ver //')

# Run as root, the server runs as `mysql` (--user, which both
# mariadb-install-db and mariadbd take); it must reach its files in $TMP.
SERVER_USER=()
if ((EUID == 0)); then
    id mysql >/dev/null 2>&1 || die "running as root needs a mysql user to run the server as"
    SERVER_USER=(--user=mysql)
    chmod 711 "$TMP"
fi

random_hex() { od -An -tx1 -N16 /dev/urandom | tr -d ' \n'; }

# Every client starts from a clean environment (no inherited MYSQL_PWD,
# host or port) and reads no option file.
MY_CLEAN_ENV=(env -u MYSQL_PWD -u MYSQL_HOST -u MYSQL_TCP_PORT -u MYSQL_UNIX_PORT -u MYSQL_HOME
    -u MARIADB_HOME -u MYSQL_TEST_LOGIN_FILE -u LIBMYSQL_PLUGINS -u LIBMYSQL_PLUGIN_DIR
    -u MARIADB_PLUGIN_DIR)

if ((BUILD)); then build_release; fi

LOAD_START=$(load_now)

# ------------------------------------------------------------ MariaDB

# A throwaway server in $TMP/my with its own tmpdir (a starting mariadbd
# deletes every #sql* file in its tmpdir: in a shared /tmp it would take
# other servers' temporary tables), durability off, a buffer pool that
# holds the table, no query cache.
MY_DIR="$TMP/my"
mkdir -p "$MY_DIR/tmp"
if ((EUID == 0)); then chown -R mysql: "$MY_DIR"; fi
POOL_MB=$((ROWS / 4000 + 128))
MY_BASE=(--no-defaults "${SERVER_USER[@]}" --datadir="$MY_DIR/data" --tmpdir="$MY_DIR/tmp")
MY_OPTS=(--bind-address=127.0.0.1 --skip-name-resolve --character-set-server=utf8mb4
    --collation-server=utf8mb4_general_ci --innodb-buffer-pool-size="${POOL_MB}M"
    --innodb-flush-log-at-trx-commit=0 --innodb-doublewrite=0 --query-cache-type=0
    --query-cache-size=0 --max-connections=200 --performance-schema=OFF)
"$INSTALL_DB" "${MY_BASE[@]}" --auth-root-authentication-method=normal --skip-test-db \
    >"$TMP/install-db.out" 2>"$TMP/install-db.err" || die "mariadb-install-db failed: $(tail -n 5 "$TMP/install-db.err")"

# A free port can be taken before the server binds it: try a few.
MY_PORT=""
for attempt in 1 2 3 4 5; do
    port=$(free_port tcp)
    start mariadbd "$MARIADBD" "${MY_BASE[@]}" --port="$port" --socket="$MY_DIR/mysqld.sock" \
        --pid-file="$MY_DIR/mariadbd.pid" "${MY_OPTS[@]}"
    MY_PID=$LAST_PID
    for ((i = 0; i < 600; i++)); do
        grep -q 'ready for connections' "$TMP/mariadbd.err" && break
        kill -0 "$MY_PID" 2>/dev/null || break
        sleep 0.1
    done
    if grep -q 'ready for connections' "$TMP/mariadbd.err"; then
        MY_PORT=$port
        break
    fi
    grep -q 'Address already in use' "$TMP/mariadbd.err" || die "mariadbd did not start: $(tail -n 5 "$TMP/mariadbd.err")"
    stop "$MY_PID"
    mv "$TMP/mariadbd.err" "$TMP/mariadbd-attempt$attempt.log"
    log "MariaDB did not start on port $port (attempt $attempt)"
done
[[ -n $MY_PORT ]] || die "mariadbd did not start on a free port"
# A throwaway server: no clean shutdown (flushing the buffer pool) needed.
CLEANUP_HOOKS+=("{ kill -KILL $MY_PID; wait $MY_PID; } 2>/dev/null")
log "MariaDB on 127.0.0.1:$MY_PORT ($MY_VERSION)"

ROOT_PW=$(random_hex)
BENCH_PW=$(random_hex)
# root over the private socket (MYSQL_PWD once it has a password).
root_sql() {
    "${MY_CLEAN_ENV[@]}" ${ROOT_PW_SET:+MYSQL_PWD="$ROOT_PW"} "$MY_CLIENT" --no-defaults \
        --protocol=SOCKET --socket="$MY_DIR/mysqld.sock" -u root --default-character-set=utf8mb4 "$@"
}
# root only on the socket, with a password; bench only from 127.0.0.1,
# where every path, the agent's too, reaches the server from.
root_sql -N -B >/dev/null <<SQL
delete from mysql.global_priv where User = 'root' and Host <> 'localhost';
flush privileges;
alter user root@localhost identified by '$ROOT_PW';
create database bench;
create user bench@'127.0.0.1' identified by '$BENCH_PW';
grant all on bench.* to bench@'127.0.0.1';
SQL
ROOT_PW_SET=1

# bench_sql ARGS...: the client as bench, straight to the server.
bench_sql() {
    "${MY_CLEAN_ENV[@]}" MYSQL_PWD="$BENCH_PW" "$MY_CLIENT" --no-defaults --protocol=TCP -h 127.0.0.1 \
        -P "$MY_PORT" -u bench --database=bench --skip-ssl --default-character-set=utf8mb4 "$@"
}

TABLE=bench_rows
SELECT_SQL="select * from $TABLE"
[[ $(root_sql -N -B -e "select count(*) from information_schema.engines where engine = 'SEQUENCE'") == 1 ]] ||
    die "the server has no SEQUENCE engine (seq_1_to_N) to generate the table with"
log "generating $TABLE: $ROWS rows"
# Deterministic, as in scripts/bench-mask.sh (the same values, in MariaDB's
# SQL): row g picks its parts by g modulo small primes. About 95 % of rows
# have an e-mail address; 5 % of notes hold a phone number, 5 % a card
# number (test numbers, valid Luhn), 5 % an e-mail address, the rest plain
# sentences; references are order, invoice and tracking numbers.
bench_sql >/dev/null <<SQL
create table $TABLE (
    id int unsigned not null primary key,
    full_name varchar(100) not null,
    email varchar(120),
    note varchar(200) not null,
    address varchar(120) not null,
    reference varchar(60) not null
) engine = InnoDB;
insert into $TABLE
select g,
    concat(fname, ' ', lname),
    if(g % 20 <> 0, concat(lower(fname), '.', lower(lname), g, '@', domain), null),
    case
        when g % 100 < 5 then concat(
            elt(1 + g % 3, 'Call me back on ', 'Customer prefers a call at ', 'Driver could not reach '),
            elt(1 + g % 4, concat('(415) 555-', lpad(g % 10000, 4, '0')),
                concat('+44 20 7946 ', lpad(g % 10000, 4, '0')),
                concat('+1 212-555-', lpad(g % 10000, 4, '0')),
                concat('+49 30 901820', lpad(g % 100, 2, '0'))),
            elt(1 + g % 3, ' after 6pm.', ', no answer yesterday.', ' before delivery.'))
        when g % 100 < 10 then concat(
            elt(1 + g % 3, 'Paid with card ', 'Card on file: ', 'Refund to '),
            elt(1 + g % 5, '4242 4242 4242 4242', '4111-1111-1111-1111', '5555 5555 5555 4444',
                '378282246310005', '6011 1111 1111 1117'),
            elt(1 + g % 3, ', receipt sent.', ' (expires 04/27).', ' as requested.'))
        when g % 100 < 15 then concat(
            elt(1 + g % 3, 'Send the invoice to ', 'Copy ', 'Forward tracking updates to '),
            'billing', g, '@', domain,
            elt(1 + g % 3, ' please.', ' on every order.', ' as well.'))
        else elt(1 + g % 9, 'Please leave the parcel at the back door.',
            'Customer asked for gift wrap and a handwritten card.',
            concat('Delivered on ', date_format(date '2024-01-01' + interval g % 365 day, '%Y-%m-%d'),
                ', signed by reception.'),
            concat('Refund of \$', g % 200, '.99 approved after review.'),
            concat('Second attempt, nobody home at 14:', lpad(g % 60, 2, '0'), '.'),
            concat('Item ', 1 + g % 4, ' of 4 was out of stock, shipped separately.'),
            concat('Upgraded to express shipping, label v2.', g % 10, '.'),
            'Returned in original packaging; restocking fee waived.',
            concat('Order ', g, ' split into two boxes of ', 1 + g % 9, ' kg.'))
    end,
    concat(1 + g % 9973, ' ',
        elt(1 + g % 9, 'Oak Street', 'Maple Avenue', 'Cedar Lane', 'Pine Road', 'Elm Street',
            'Washington Blvd', 'Lake Drive', 'Hill Road', 'Station Road'), ', ',
        elt(1 + g % 11, 'Springfield', 'Riverside', 'Fairview', 'Madison', 'Georgetown', 'Salem',
            'Franklin', 'Greenville', 'Bristol', 'Clinton', 'Ashland'), ' ',
        lpad(10000 + g % 89999, 5, '0')),
    case g % 3
        when 0 then concat('ORD-2024-', lpad(g, 7, '0'))
        when 1 then concat('INV ', date_format(date '2024-01-01' + interval g % 365 day, '%Y%m%d'), '-',
            lpad(g % 100000, 5, '0'))
        else concat('tracking 9400 1000 ', lpad(g % 10000, 4, '0'), ' ', lpad(g * 7 % 10000, 4, '0'),
            ' ', lpad(g * 13 % 10000, 4, '0'), ' 00')
    end
from (select seq as g,
        elt(1 + seq % 31, 'Olivia', 'Liam', 'Emma', 'Noah', 'Amelia', 'Oliver', 'Sophia', 'Elijah',
            'Mia', 'James', 'Charlotte', 'Lucas', 'Ava', 'Mateo', 'Isabella', 'Hiroshi', 'Priya',
            'Joao', 'Fatima', 'Chen', 'Anna', 'Pierre', 'Ingrid', 'Kwame', 'Sofia', 'Dmitri',
            'Lucia', 'Ahmed', 'Mei', 'Carlos', 'Zara') as fname,
        elt(1 + floor(seq / 31) % 37, 'Smith', 'Johnson', 'Garcia', 'Brown', 'Miller', 'Davis',
            'Martinez', 'Lopez', 'Wilson', 'Anderson', 'Taylor', 'Moore', 'Jackson', 'Martin', 'Lee',
            'Walker', 'Silva', 'Santos', 'Kumar', 'Sato', 'Muller', 'Rossi', 'Dubois', 'Nowak',
            'Hansen', 'Okafor', 'Ivanova', 'Kim', 'Nguyen', 'Cohen', 'Haddad', 'Larsen', 'Costa',
            'Novak', 'Schmidt', 'Fischer', 'Jensen') as lname,
        elt(1 + seq % 5, 'example.com', 'mail.example.org', 'corp.example.net', 'inbox.example.io',
            'example.co.uk') as domain
    from seq_1_to_$ROWS) p;
analyze table $TABLE;
SQL
TABLE_BYTES=$(bench_sql -N -B -e "select data_length + index_length from information_schema.tables
    where table_schema = 'bench' and table_name = '$TABLE'")
GEN_COUNTS=$(bench_sql -N -B -e "select concat_ws(', ', concat('emails ', count(email)),
    concat('notes with a phone ', sum(note regexp '^(Call|Customer prefers|Driver)')),
    concat('with a card ', sum(note regexp '^(Paid|Card on file|Refund to)')),
    concat('with an e-mail ', sum(note regexp '^(Send|Copy|Forward)'))) from $TABLE")
log "$TABLE: $ROWS rows, $TABLE_BYTES bytes (InnoDB data + index); $GEN_COUNTS"

# The point selects: 10000 random ids (fixed seed), one statement a line;
# every mysqlslap client runs the list from the top, round and round.
python3 - "$ROWS" >"$TMP/point-selects.sql" <<'PY'
import random, sys
rows = int(sys.argv[1])
r = random.Random(6)
for _ in range(10000):
    print(f"select id, full_name, email from bench_rows where id = {r.randint(1, rows)};")
PY
POINT_SQL_EXAMPLE=$(head -n 1 "$TMP/point-selects.sql")

# ------------------------------------------------------------ paths

# PATHS: the paths measured, in order; PORT[path]: the local port clients
# use; CPU_PIDS[path]: the processes of the path whose CPU time is counted.
PATHS=(direct ssh hoop hoop_mask)
declare -A PORT=([direct]=$MY_PORT) CPU_PIDS=([direct]="")
declare -A LABEL=([direct]="direct" [ssh]="ssh -L" [hoop]="hoop" [hoop_mask]="hoop, masking on")

start_ssh_forward "127.0.0.1:$MY_PORT"
PORT[ssh]=$FWD_PORT
CPU_PIDS[ssh]="$SSH_PID $SSHD_PID"

# Two mysql connections to the same database, identical but for the
# [connection.mask] table; the password reaches only the agent.
my_connection() { # NAME
    cat <<EOF
[[connection]]
name = "$1"
type = "mysql"
address = "127.0.0.1:$MY_PORT"
database = "bench"
user = "bench"
password = { env = "BENCH_MYSQL_PASSWORD" }
tls = "disable"
allow_groups = ["eng"]
EOF
}
MASK_TOML='[connection.mask]
detectors = "all"
strategy = "partial"'
start_hoop_agent "$(my_connection my)

$(my_connection mymask)
$MASK_TOML" BENCH_MYSQL_PASSWORD="$BENCH_PW"
PORT[hoop]=$(free_port tcp)
start_hoop_connect my "${PORT[hoop]}" connect
CPU_PIDS[hoop]="$AGENT_PID $CONNECT_PID"
PORT[hoop_mask]=$(free_port tcp)
start_hoop_connect mymask "${PORT[hoop_mask]}" connect-mask
CPU_PIDS[hoop_mask]="$AGENT_PID $CONNECT_PID"

# client PATH PROG ARGS...: the mariadb client or mariadb-slap against
# PATH as bench; with the password except through hoop, which must let it
# in without one.
client() {
    local path=$1 prog=$2 pw=()
    shift 2
    [[ $path == hoop* ]] || pw=(MYSQL_PWD="$BENCH_PW")
    "${MY_CLEAN_ENV[@]}" "${pw[@]}" "$prog" --no-defaults --protocol=TCP -h 127.0.0.1 \
        -P "${PORT[$path]}" -u bench --skip-ssl "$@" </dev/null
}
my() { # PATH ARGS...: the mariadb client on database bench
    local path=$1
    shift
    client "$path" "$MY_CLIENT" --database=bench --default-character-set=utf8mb4 "$@"
}

for path in "${PATHS[@]}"; do
    got=$(my "$path" -N -B -e "select concat(current_user(), '/', database())" 2>&1) ||
        die "$path: mariadb failed: $got"
    [[ $got == bench@127.0.0.1/bench ]] || die "$path: expected bench@127.0.0.1/bench, got $got"
done
log "all paths answer as bench@127.0.0.1/bench (hoop without a password)"

# ------------------------------------------------------------ correctness

# Once per path, untimed (it also warms every path and the buffer pool
# up): the whole result into a file. Through hoop without masking it must
# be the direct output byte for byte and hold every sample (the e-mail
# addresses of the first, middle and last rows with one, and a card
# number); through the masked connection none of them.
SAMPLES=()
EMAILS=$(bench_sql -N -B -e "select count(email) from $TABLE")
((EMAILS > 0)) || die "$TABLE has no e-mail addresses"
for offset in 0 $((EMAILS / 2)) $((EMAILS - 1)); do
    SAMPLES+=("$(bench_sql -N -B -e "select email from $TABLE where email is not null order by id limit 1 offset $offset")")
    [[ -n ${SAMPLES[-1]} ]] || die "no e-mail address at offset $offset"
done
SAMPLES+=("4242 4242 4242 4242")
declare -A OUT_SUM SAMPLE_HITS
for path in "${PATHS[@]}"; do
    file="$TMP/$path.rows"
    my "$path" -N -B --quick -e "$SELECT_SQL" >"$file" 2>"$TMP/$path.check.err" ||
        die "$path: $SELECT_SQL failed: $(tail -n 5 "$TMP/$path.check.err")"
    lines=$(wc -l <"$file")
    ((lines == ROWS)) || die "$path: $lines lines of output, expected $ROWS"
    [[ $path != direct ]] || RESULT_BYTES=$(wc -c <"$file")
    OUT_SUM[$path]=$(md5sum <"$file" | cut -d' ' -f1)
    hits=()
    for s in "${SAMPLES[@]}"; do hits+=("$(grep -cF -- "$s" "$file" || true)"); done
    SAMPLE_HITS[$path]="${hits[*]}"
    rm -f "$file"
    log "$path: $lines rows; lines holding each sample (${SAMPLES[*]/%/;}): ${hits[*]}"
done
for path in ssh hoop; do
    [[ ${OUT_SUM[$path]} == "${OUT_SUM[direct]}" ]] || die "$path changed the output"
done
for h in ${SAMPLE_HITS[hoop]}; do ((h > 0)) || die "hoop without masking: a sample value is missing"; done
for h in ${SAMPLE_HITS[hoop_mask]}; do ((h == 0)) || die "hoop with masking let a sample value through"; done
[[ ${OUT_SUM[hoop_mask]} != "${OUT_SUM[direct]}" ]] || die "hoop with masking changed nothing"
CHECK="the output through ssh -L and through hoop without masking is the direct one byte for byte and holds every sample value; the masked one holds none (${#SAMPLES[@]} samples: 3 e-mail addresses, 1 card number)"
log "correct: $CHECK"

# ------------------------------------------------------------ measures

RES="$TMP/results"
mkdir -p "$RES"
record() { echo "$3" >>"$RES/$1.$2"; } # PATH KEY VALUE
path_cpu() { # PATH: CPU ticks of the path's processes so far
    local pid total=0
    for pid in ${CPU_PIDS[$1]}; do total=$((total + $(tree_cpu_ticks "$pid"))); done
    echo "$total"
}
TICK=$(getconf CLK_TCK)

# cpu_record PATH KEY TICKS PER: records TICKS of CPU over PER (a count or
# 1) as KEY, in µs per unit (PER > 1) or seconds.
cpu_record() {
    record "$1" "$2" "$(awk -v c="$3" -v hz="$TICK" -v n="$4" \
        'BEGIN { if (n > 1) printf "%.1f\n", c / hz * 1e6 / n; else printf "%.2f\n", c / hz }')"
}
# ticks SECONDS: clock ticks (for the client's user + system from `time`).
ticks() { awk -v s="$1" -v hz="$TICK" 'BEGIN { printf "%.0f\n", s * hz }'; }

# slap_run PATH NAME CONCURRENCY QUERIES: mariadb-slap running QUERIES
# point selects from the list over CONCURRENCY connections; records
# queries/s, the mean latency (ms, per client) and the CPU per query of the
# path's processes, the server and mariadb-slap.
slap_run() {
    local path=$1 name=$2 conc=$3 queries=$4 out cpu0 cpu1 srv0 srv1 ag0 ag1 user sys secs per total qps
    out="$TMP/$path.$name.slap"
    cpu0=$(path_cpu "$path") srv0=$(tree_cpu_ticks "$MY_PID") ag0=$(tree_cpu_ticks "$AGENT_PID")
    {
        local TIMEFORMAT='%U %S'
        time client "$path" "$SLAP" --create-schema=bench --query="$TMP/point-selects.sql" --delimiter=';' \
            --concurrency="$conc" --number-of-queries="$queries" --iterations=1 >"$out" 2>&1
    } 2>"$out.time" || die "$path: mariadb-slap -c $conc failed: $(tail -n 5 "$out")"
    cpu1=$(path_cpu "$path") srv1=$(tree_cpu_ticks "$MY_PID") ag1=$(tree_cpu_ticks "$AGENT_PID")
    read -r user sys <"$out.time"
    secs=$(sed -n 's/^[[:space:]]*Average number of seconds to run all queries: \([0-9.]*\) seconds.*/\1/p' "$out")
    per=$(sed -n 's/^[[:space:]]*Average number of queries per client: \([0-9]*\).*/\1/p' "$out")
    [[ -n $secs && -n $per ]] || die "$path: cannot read mariadb-slap's output: $(cat "$out")"
    total=$((per * conc))
    qps=$(awk -v n="$total" -v s="$secs" 'BEGIN { printf "%.0f\n", n / s }')
    record "$path" "${name}_qps" "$qps"
    record "$path" "${name}_latency_ms" "$(awk -v n="$per" -v s="$secs" 'BEGIN { printf "%.3f\n", s * 1000 / n }')"
    [[ $path == direct ]] || cpu_record "$path" "${name}_cpu_us" $((cpu1 - cpu0)) "$total"
    [[ $path != hoop* ]] || cpu_record "$path" "${name}_agent_us" $((ag1 - ag0)) "$total"
    cpu_record "$path" "${name}_server_us" $((srv1 - srv0)) "$total"
    cpu_record "$path" "${name}_client_us" "$(ticks "$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')")" "$total"
    log "$path: mariadb-slap -c $conc, $total point selects in $secs s: $qps/s"
}

# bulk_run PATH: one timed `select *`, streamed (--quick) to /dev/null;
# records the wall time and the CPU of the path's processes, the server and
# the client.
bulk_run() {
    local path=$1 cpu0 cpu1 srv0 srv1 ag0 ag1 wall user sys
    cpu0=$(path_cpu "$path") srv0=$(tree_cpu_ticks "$MY_PID") ag0=$(tree_cpu_ticks "$AGENT_PID")
    {
        local TIMEFORMAT='%R %U %S'
        time my "$path" -N -B --quick -e "$SELECT_SQL" >/dev/null 2>"$TMP/$path.bulk.err"
    } 2>"$TMP/$path.time" || die "$path: $SELECT_SQL failed: $(tail -n 5 "$TMP/$path.bulk.err")"
    cpu1=$(path_cpu "$path") srv1=$(tree_cpu_ticks "$MY_PID") ag1=$(tree_cpu_ticks "$AGENT_PID")
    read -r wall user sys <"$TMP/$path.time"
    record "$path" bulk_s "$wall"
    [[ $path == direct ]] || cpu_record "$path" bulk_cpu_s $((cpu1 - cpu0)) 1
    [[ $path != hoop* ]] || cpu_record "$path" bulk_agent_s $((ag1 - ag0)) 1
    cpu_record "$path" bulk_server_s $((srv1 - srv0)) 1
    record "$path" bulk_client_s "$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f\n", u + s }')"
    log "$path: $SELECT_SQL: $wall s ($(awk -v b="$RESULT_BYTES" -v w="$wall" 'BEGIN { printf "%.1f", b / 1e6 / w }') MB/s of output)"
}

# A short direct run first: the server's caches settle.
slap_run direct warmup "$CLIENTS" "$(((QUERIES + 3) / 4))"
rm -f "$RES"/direct.warmup_*

# Measure by measure, all paths back to back, so that other load on the
# machine hits the paths of one figure alike; the order of the paths
# turns each round.
for ((round = 0; round < ROUNDS; round++)); do
    order=()
    for ((i = 0; i < ${#PATHS[@]}; i++)); do order+=("${PATHS[(i + round) % ${#PATHS[@]}]}"); done
    log "round $((round + 1)) of $ROUNDS: ${order[*]}; load $(load_now)"
    for path in "${order[@]}"; do slap_run "$path" c8 "$CLIENTS" "$QUERIES"; done
    for path in "${order[@]}"; do slap_run "$path" c1 1 "$QUERIES_C1"; done
    for path in "${order[@]}"; do bulk_run "$path"; done
done
kill -0 "$AGENT_PID" 2>/dev/null || die "hoop-agent exited during the runs"
kill -0 "$MY_PID" 2>/dev/null || die "mariadbd exited during the runs"

AUDIT="$AGENT_DIR/audit/audit.jsonl"
sleep 0.5 # the audit writer commits every few milliseconds
AUDIT_LINES=$(wc -l <"$AUDIT")
AUDIT_VERIFY=$("$BIN/hoop-agent" audit verify --data-dir "$AGENT_DIR" 2>&1 | tail -n 1) || true
# What the audit log says the last masked `select *` masked.
AUDIT_MASKED=$(python3 - "$AUDIT" "$SELECT_SQL" <<'PY'
import json, sys
last = None
for line in open(sys.argv[1], encoding="utf-8"):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if e.get("connection") == "mymask" and e.get("text") == sys.argv[2] and "rows" in e:
        last = e
if last is None:
    print("no audit event of the masked select found")
else:
    m = last.get("masked") or {}
    det = ", ".join(f"{k} {v}" for k, v in sorted((m.get("detectors") or {}).items()))
    print(f"rows {last.get('rows')}, masked.values {m.get('values', 0)} ({det or 'no detector counts'})")
PY
)

# ------------------------------------------------------------ report

get() { # PATH KEY: the median of KEY's values for PATH, or "-"
    if [[ -s $RES/$1.$2 ]]; then median <"$RES/$1.$2"; else echo -; fi
}
all() { # PATH KEY: every value of KEY for PATH, comma-separated
    if [[ -s $RES/$1.$2 ]]; then paste -sd, "$RES/$1.$2" | sed 's/,/, /g'; else echo -; fi
}
# paired A B KEY: A's KEY over B's, round by round.
paired() { paired_median "$RES/$1.$3" "$RES/$2.$3"; }
# ratio4 A B: A/B to four decimals (for the verdicts), or "-".
ratio4() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.4f\n", a / b }'
}
mbps() { awk -v b="$RESULT_BYTES" -v w="$1" 'BEGIN { if (w + 0 > 0) printf "%.1f\n", b / 1e6 / w; else print "-" }'; }

row() { # label key
    local d s h m
    d=$(get direct "$2") s=$(get ssh "$2") h=$(get hoop "$2") m=$(get hoop_mask "$2")
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$d" "$s" "$h" "$m" \
        "$(ratio "$s" "$d")" "$(ratio "$h" "$d")" "$(ratio "$h" "$s")" "$(ratio "$m" "$h")"
}

report() {
    local cpu warnings path
    cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
    warnings=$(agent_warnings)
    echo "MySQL benchmark, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "- command: scripts/bench-mysql.sh${ARGS:+ $ARGS}"
    echo "- machine: $(nproc) cores (${cpu:-unknown cpu}), Linux $(uname -r)"
    echo "- binaries: $BIN"
    echo "- server: mariadbd $MY_VERSION, innodb_flush_log_at_trx_commit 0, buffer pool ${POOL_MB} MB, query cache off, no TLS"
    echo "- table $TABLE: $ROWS rows (id primary key and five text columns: full_name, email, note, address, reference), $TABLE_BYTES bytes of InnoDB data + index; generated: $GEN_COUNTS"
    echo "- point selects: $(basename "$SLAP") --concurrency=$CLIENTS --number-of-queries=$QUERIES, and --concurrency=1 --number-of-queries=$QUERIES_C1, from a list of 10000 random ids (\`$POINT_SQL_EXAMPLE\`); one connection per client, text protocol"
    echo "- bulk: $(basename "$MY_CLIENT") -N -B --quick -e '$SELECT_SQL' >/dev/null ($RESULT_BYTES bytes of output)"
    echo "- $ROUNDS round(s), path order rotated each round, median shown"
    echo "- ssh: $(ssh -V 2>&1), cipher ${SSH_CIPHER:--}"
    echo "- hoop: mysql connections, tls = \"disable\" to the server, audit on: $AUDIT_LINES audit lines; audit verify: $AUDIT_VERIFY"
    echo "- masking on (connection mymask): detectors = \"all\", strategy = \"partial\"; the last masked select *: $AUDIT_MASKED"
    echo "- correctness (once, untimed): $CHECK"
    echo "- hoop-agent warnings: ${warnings:-none}"
    echo "- load average (1, 5, 15 min): $LOAD_START at the start, $(load_now) at the end"
    echo
    echo "| figure | direct | ssh -L | hoop | hoop, masking on | ssh/direct | hoop/direct | hoop/ssh | masked/hoop |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    row "point selects/s, $CLIENTS clients" c8_qps
    row "point selects/s, 1 client" c1_qps
    row "latency ms, 1 client" c1_latency_ms
    row "bulk select * s" bulk_s
    printf '| %s | %s | %s | %s | %s | | | | |\n' "bulk MB/s of output" "$(mbps "$(get direct bulk_s)")" \
        "$(mbps "$(get ssh bulk_s)")" "$(mbps "$(get hoop bulk_s)")" "$(mbps "$(get hoop_mask bulk_s)")"
    echo
    local q8h q8s bd bh bm
    q8h=$(get hoop c8_qps) q8s=$(get ssh c8_qps)
    bd=$(get direct bulk_s) bh=$(get hoop bulk_s) bm=$(get hoop_mask bulk_s)
    echo "| target | value | bound | result |"
    echo "| --- | ---: | --- | --- |"
    echo "| point selects/s, $CLIENTS clients, hoop / ssh -L | $(ratio "$q8h" "$q8s") | ≥ 1.5 | $(verdict "$(ratio4 "$q8h" "$q8s")" 1.5 higher) |"
    echo "| bulk throughput, hoop / direct (wall direct / hoop) | $(ratio "$bd" "$bh") | ≥ 0.95 | $(verdict "$(ratio4 "$bd" "$bh")" 0.95 higher) |"
    echo "| bulk wall time, masking on / off | $(ratio "$bm" "$bh") | ≤ 1.15 | $(verdict "$(ratio4 "$bm" "$bh")" 1.15 lower) |"
    if ((ROUNDS > 1)); then
        local pd pm
        pd=$(paired direct hoop bulk_s) pm=$(paired hoop_mask hoop bulk_s)
        echo "| … bulk, hoop / direct, median of the rounds' own ratios | $(ratio "$pd" 1) | ≥ 0.95 | $(verdict "$pd" 0.95 higher) |"
        echo "| … bulk, masking on / off, median of the rounds' own ratios | $(ratio "$pm" 1) | ≤ 1.15 | $(verdict "$pm" 1.15 lower) |"
    fi
    echo
    echo "CPU time (user + system) of the path's own processes (ssh + sshd; hoop-agent + hoop connect), of the server (mariadbd) and of the client:"
    echo
    echo "| CPU | direct | ssh -L | hoop | hoop, masking on |"
    echo "| --- | ---: | ---: | ---: | ---: |"
    local key label
    for key in c8_cpu_us c8_agent_us c8_server_us c8_client_us c1_cpu_us c1_agent_us c1_server_us \
        c1_client_us bulk_cpu_s bulk_agent_s bulk_server_s bulk_client_s; do
        case $key in
            c8_cpu_us) label="path µs per point select, $CLIENTS clients" ;;
            c8_server_us) label="mariadbd µs per point select, $CLIENTS clients" ;;
            c8_client_us) label="$(basename "$SLAP") µs per point select, $CLIENTS clients" ;;
            c8_agent_us) label="… of which hoop-agent" ;;
            c1_cpu_us) label="path µs per point select, 1 client" ;;
            c1_agent_us) label="… of which hoop-agent" ;;
            c1_server_us) label="mariadbd µs per point select, 1 client" ;;
            c1_client_us) label="$(basename "$SLAP") µs per point select, 1 client" ;;
            bulk_cpu_s) label="path s per bulk select *" ;;
            bulk_agent_s) label="… of which hoop-agent" ;;
            bulk_server_s) label="mariadbd s per bulk select *" ;;
            bulk_client_s) label="$(basename "$MY_CLIENT") s per bulk select *" ;;
        esac
        printf '| %s | %s | %s | %s | %s |\n' "$label" "$(get direct "$key")" "$(get ssh "$key")" \
            "$(get hoop "$key")" "$(get hoop_mask "$key")"
    done
    if ((ROUNDS > 1)); then
        echo
        echo "Every round (path: point selects/s, $CLIENTS clients; latency ms, 1 client; bulk s):"
        echo
        for path in "${PATHS[@]}"; do
            echo "- ${LABEL[$path]}: $(all "$path" c8_qps); $(all "$path" c1_latency_ms); $(all "$path" bulk_s)"
        done
    fi
}

report >"$TMP/report.md"
echo
cat "$TMP/report.md"
if [[ -n $OUT ]]; then
    cp "$TMP/report.md" "$OUT"
    log "table written to $OUT"
fi
