#!/usr/bin/env bash
# Masking benchmark, end to end (issue 5): `select *` of a table of five
# text columns (1M rows of names, e-mail addresses, free-text notes of
# which ~15 % hold a phone number, a card number or an e-mail address,
# addresses, and order/tracking numbers that are not personal data) with
# psql, four ways in one run: directly, through hoop on a postgres
# connection without masking, and through hoop on identical connections
# with masking on: all detectors with the partial strategy (as the MySQL
# benchmark's), and the same plus a column rule that hashes every name.
# Prints the median wall time of each, the CPU time of psql, hoop-agent
# and `hoop connect`, the ratio masked/unmasked and PASS/FAIL against the
# target (masking adds at most 15 % to the unmasked tunnel's time); checks
# once that the masked paths hide the sample values the unmasked path
# shows, and reads what the audit log says was masked.
#
# Everything listens on 127.0.0.1 on a free port and is stopped on exit.
# The target is informative: the script exits 0 unless something broke.
# Helpers come from scripts/bench.sh (processes, ports, the hoop agent)
# and scripts/bench-pg.sh (the PostgreSQL cluster).
#
#   scripts/bench-mask.sh [--quick] [--rows N] [--rounds N] [--out FILE] [--no-build]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=bench-pg.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-pg.sh"

usage() {
    cat <<'EOF'
usage: scripts/bench-mask.sh [--quick] [--rows N] [--rounds N] [--out FILE] [--no-build]
  --quick     smoke test: 100000 rows, 1 round
  --rows N    rows in the table (default 1000000)
  --rounds N  timed runs per path, the order of the paths rotated each
              round; the table shows the median (default 3)
  --out FILE  also write the results table (markdown) to FILE
  --no-build  use the release binaries already in target/release
EOF
}

ARGS="$*"
ROWS=1000000 ROUNDS=3 OUT="" BUILD=1
num() { [[ $2 =~ ^[1-9][0-9]*$ ]] || { echo "bench-mask.sh: $1 needs a positive number" >&2; exit 2; }; }
while (($#)); do
    case "$1" in
        --quick) ROWS=100000 ROUNDS=1 ;;
        --rows | --rounds | --out)
            [[ $# -ge 2 ]] || { usage >&2; exit 2; }
            case "$1" in
                --rows) num "$1" "$2"; ROWS=$2 ;;
                --rounds) num "$1" "$2"; ROUNDS=$2 ;;
                --out) OUT=$2 ;;
            esac
            shift
            ;;
        --no-build) BUILD=0 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "bench-mask.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
if [[ -n $OUT && $OUT != /* ]]; then OUT="$PWD/$OUT"; fi

bench_init bench-mask.sh
pg_init

TABLE=mask_bench
SELECT_SQL="select * from $TABLE"
# The masked connections' settings, as they go into the agent's config:
# every built-in detector (as the MySQL benchmark's masked connection),
# and the same plus a column rule that hashes every name (HMAC-SHA-256 of
# one value per row).
DETECT_TOML='[connection.mask]
detectors = "all"
strategy = "partial"'
MASK_TOML="$DETECT_TOML"'
[[connection.mask.column]]
pattern = "*name*"
strategy = "hash"'

if ((BUILD)); then build_release; fi

LOAD_START=$(load_now)

# ------------------------------------------------------------ PostgreSQL

start_pg_cluster
# Consecutive scans start at the block where the last one stopped when a
# table outgrows a quarter of shared_buffers: keep the row order fixed,
# so that the outputs of two paths compare byte for byte.
super_psql -d postgres -c "alter database bench set synchronize_seqscans = off"

bench_psql() {
    "${PG_CLEAN_ENV[@]}" PGPASSWORD="$BENCH_PW" "$PG_BIN/psql" -X -q -w -v ON_ERROR_STOP=1 \
        -h 127.0.0.1 -p "$PG_PORT" -U bench -d bench "$@"
}

log "generating $TABLE: $ROWS rows"
# Deterministic: row g picks its parts by g modulo small primes. About
# 95 % of rows have an e-mail address; 5 % of notes hold a phone number,
# 5 % a card number (test numbers, valid Luhn), 5 % an e-mail address,
# the rest plain sentences with dates, prices and counts. References are
# order, invoice and tracking numbers: lookalikes the detectors must
# leave alone.
bench_psql -v rows="$ROWS" >/dev/null <<'SQL'
create table mask_bench (full_name text, email text, note text, address text, reference text);
insert into mask_bench
select
    fname || ' ' || lname,
    case when g % 20 <> 0 then lower(fname) || '.' || lower(lname) || g || '@' || domain end,
    case
        when g % 100 < 5 then (array['Call me back on ', 'Customer prefers a call at ',
            'Driver could not reach '])[1 + g % 3]
            || (array['(415) 555-' || lpad((g % 10000)::text, 4, '0'),
                '+44 20 7946 ' || lpad((g % 10000)::text, 4, '0'),
                '+1 212-555-' || lpad((g % 10000)::text, 4, '0'),
                '+49 30 901820' || lpad((g % 100)::text, 2, '0')])[1 + g % 4]
            || (array[' after 6pm.', ', no answer yesterday.', ' before delivery.'])[1 + g % 3]
        when g % 100 < 10 then (array['Paid with card ', 'Card on file: ', 'Refund to '])[1 + g % 3]
            || (array['4242 4242 4242 4242', '4111-1111-1111-1111', '5555 5555 5555 4444',
                '378282246310005', '6011 1111 1111 1117'])[1 + g % 5]
            || (array[', receipt sent.', ' (expires 04/27).', ' as requested.'])[1 + g % 3]
        when g % 100 < 15 then (array['Send the invoice to ', 'Copy ', 'Forward tracking updates to '])[1 + g % 3]
            || 'billing' || g || '@' || domain
            || (array[' please.', ' on every order.', ' as well.'])[1 + g % 3]
        else (array['Please leave the parcel at the back door.',
            'Customer asked for gift wrap and a handwritten card.',
            'Delivered on ' || to_char(date '2024-01-01' + g % 365, 'YYYY-MM-DD') || ', signed by reception.',
            'Refund of $' || (g % 200) || '.99 approved after review.',
            'Second attempt, nobody home at 14:' || lpad((g % 60)::text, 2, '0') || '.',
            'Item ' || (1 + g % 4) || ' of 4 was out of stock, shipped separately.',
            'Upgraded to express shipping, label v2.' || (g % 10) || '.',
            'Returned in original packaging; restocking fee waived.',
            'Order ' || g || ' split into two boxes of ' || (1 + g % 9) || ' kg.'])[1 + g % 9]
    end,
    (1 + g % 9973) || ' ' || (array['Oak Street', 'Maple Avenue', 'Cedar Lane', 'Pine Road',
        'Elm Street', 'Washington Blvd', 'Lake Drive', 'Hill Road', 'Station Road'])[1 + g % 9]
        || ', ' || (array['Springfield', 'Riverside', 'Fairview', 'Madison', 'Georgetown',
        'Salem', 'Franklin', 'Greenville', 'Bristol', 'Clinton', 'Ashland'])[1 + g % 11]
        || ' ' || lpad((10000 + g % 89999)::text, 5, '0'),
    case g % 3
        when 0 then 'ORD-2024-' || lpad(g::text, 7, '0')
        when 1 then 'INV ' || to_char(date '2024-01-01' + g % 365, 'YYYYMMDD') || '-' || lpad((g % 100000)::text, 5, '0')
        else 'tracking 9400 1000 ' || lpad((g % 10000)::text, 4, '0') || ' ' || lpad((g * 7 % 10000)::text, 4, '0')
            || ' ' || lpad((g * 13 % 10000)::text, 4, '0') || ' 00'
    end
from generate_series(1, :rows) g,
    lateral (select
        (array['Olivia', 'Liam', 'Emma', 'Noah', 'Amelia', 'Oliver', 'Sophia', 'Elijah', 'Mia',
            'James', 'Charlotte', 'Lucas', 'Ava', 'Mateo', 'Isabella', 'Hiroshi', 'Priya',
            'Joao', 'Fatima', 'Chen', 'Anna', 'Pierre', 'Ingrid', 'Kwame', 'Sofia', 'Dmitri',
            'Lucia', 'Ahmed', 'Mei', 'Carlos', 'Zara'])[1 + g % 31] as fname,
        (array['Smith', 'Johnson', 'Garcia', 'Brown', 'Miller', 'Davis', 'Martinez', 'Lopez',
            'Wilson', 'Anderson', 'Taylor', 'Moore', 'Jackson', 'Martin', 'Lee', 'Walker',
            'Silva', 'Santos', 'Kumar', 'Sato', 'Muller', 'Rossi', 'Dubois', 'Nowak', 'Hansen',
            'Okafor', 'Ivanova', 'Kim', 'Nguyen', 'Cohen', 'Haddad', 'Larsen', 'Costa', 'Novak',
            'Schmidt', 'Fischer', 'Jensen'])[1 + g / 31 % 37] as lname,
        (array['example.com', 'mail.example.org', 'corp.example.net', 'inbox.example.io',
            'example.co.uk'])[1 + g % 5] as domain) p;
vacuum (freeze, analyze) mask_bench;
SQL
# Every run reads from shared buffers, none from the page cache.
super_psql -d bench -At -c "create extension if not exists pg_prewarm" \
    -c "select pg_prewarm('$TABLE')" >/dev/null
TABLE_BYTES=$(bench_psql -At -c "select pg_total_relation_size('$TABLE')")
TABLE_PRETTY=$(bench_psql -At -c "select pg_size_pretty(pg_total_relation_size('$TABLE'))")
# What the generator put in: values a detector should find.
GEN_COUNTS=$(bench_psql -At -F ', ' -c "select
    'emails ' || count(email),
    'notes with a phone ' || count(*) filter (where note ~ '^(Call|Customer prefers|Driver)'),
    'with a card ' || count(*) filter (where note ~ '^(Paid|Card on file|Refund to)'),
    'with an e-mail ' || count(*) filter (where note ~ '^(Send|Copy|Forward)')
    from $TABLE")
log "$TABLE: $ROWS rows, $TABLE_BYTES bytes ($TABLE_PRETTY); $GEN_COUNTS"

# ------------------------------------------------------------ paths

# Two postgres connections to the same database, identical but for the
# [connection.mask] table.
pg_connection() { # NAME
    cat <<EOF
[[connection]]
name = "$1"
type = "postgres"
address = "127.0.0.1:$PG_PORT"
database = "bench"
user = "bench"
password = { env = "BENCH_PGPASSWORD" }
tls = "disable"
allow_groups = ["eng"]
EOF
}
start_hoop_agent "$(pg_connection pg)

$(pg_connection pgdetect)
$DETECT_TOML

$(pg_connection pgmask)
$MASK_TOML" BENCH_PGPASSWORD="$BENCH_PW"

# PATHS: the paths measured, in order; PORT[path]: the local port clients
# use; CPU_PIDS[path]: the hoop processes whose CPU time is counted.
PATHS=(direct hoop hoop_detect hoop_mask)
declare -A PORT=([direct]=$PG_PORT) CPU_PIDS=([direct]="")
declare -A LABEL=([direct]="direct" [hoop]="hoop, masking off"
    [hoop_detect]="hoop, masking on (detectors)" [hoop_mask]="hoop, masking on (detectors + hash rule)")
PORT[hoop]=$(free_port tcp)
start_hoop_connect pg "${PORT[hoop]}" connect
CPU_PIDS[hoop]="$AGENT_PID $CONNECT_PID"
PORT[hoop_detect]=$(free_port tcp)
start_hoop_connect pgdetect "${PORT[hoop_detect]}" connect-detect
CPU_PIDS[hoop_detect]="$AGENT_PID $CONNECT_PID"
PORT[hoop_mask]=$(free_port tcp)
start_hoop_connect pgmask "${PORT[hoop_mask]}" connect-mask
CPU_PIDS[hoop_mask]="$AGENT_PID $CONNECT_PID"

# client PATH ARGS...: psql against PATH as user bench on database bench;
# with the password directly, without one through hoop.
client() {
    local path=$1 pw=()
    shift
    [[ $path != direct ]] || pw=(PGPASSWORD="$BENCH_PW")
    "${PG_CLEAN_ENV[@]}" "${pw[@]}" "$PG_BIN/psql" -X -w -v ON_ERROR_STOP=1 \
        -h 127.0.0.1 -p "${PORT[$path]}" -U bench -d bench "$@" </dev/null
}

# ------------------------------------------------------------ correctness

# Once per path, untimed (it also warms every path up): the whole result
# into a file. Through hoop without masking it must be the direct output
# byte for byte; through the masked connection it must hold none of the
# sample values: the e-mail addresses of the first, middle and last rows
# and a card number of the notes.
SAMPLES=()
EMAILS=$(bench_psql -At -c "select count(email) from $TABLE")
((EMAILS > 0)) || die "$TABLE has no e-mail addresses"
for offset in 0 $((EMAILS / 2)) $((EMAILS - 1)); do
    SAMPLES+=("$(bench_psql -At -c "select email from $TABLE where email is not null offset $offset limit 1")")
    [[ -n ${SAMPLES[-1]} ]] || die "no e-mail address at offset $offset"
done
SAMPLES+=("4242 4242 4242 4242")
declare -A OUT_SUM SAMPLE_HITS
for path in "${PATHS[@]}"; do
    file="$TMP/$path.psql"
    client "$path" -At -c "$SELECT_SQL" -o "$file" 2>"$TMP/$path.check.err" ||
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
[[ ${OUT_SUM[hoop]} == "${OUT_SUM[direct]}" ]] || die "hoop without masking changed the output"
for h in ${SAMPLE_HITS[hoop]}; do ((h > 0)) || die "hoop without masking: a sample value is missing"; done
for path in hoop_detect hoop_mask; do
    for h in ${SAMPLE_HITS[$path]}; do ((h == 0)) || die "$path let a sample value through"; done
    [[ ${OUT_SUM[$path]} != "${OUT_SUM[direct]}" ]] || die "$path changed nothing"
done
CHECK="the unmasked output is the direct one byte for byte and holds every sample value; both masked ones hold none (${#SAMPLES[@]} samples: 3 e-mail addresses, 1 card number)"
log "correct: $CHECK"

# ------------------------------------------------------------ measures

RES="$TMP/results"
mkdir -p "$RES"
record() { echo "$3" >>"$RES/$1.$2"; } # PATH KEY VALUE
path_cpu() { # PATH: CPU ticks of the path's hoop processes so far
    local pid total=0
    for pid in ${CPU_PIDS[$1]}; do total=$((total + $(tree_cpu_ticks "$pid"))); done
    echo "$total"
}
TICK=$(getconf CLK_TCK)
secs() { awk -v t="$1" -v hz="$TICK" 'BEGIN { printf "%.2f\n", t / hz }'; }

# select_run PATH: one timed `select *`, output to /dev/null; records the
# wall time, psql's CPU and the agent's and `hoop connect`'s.
select_run() {
    local path=$1 t agent0 agent1 conn0 conn1 wall user sys cpu=""
    agent0=$(tree_cpu_ticks "$AGENT_PID") conn0=$(path_cpu "$path")
    {
        local TIMEFORMAT='%R %U %S'
        time client "$path" -At -c "$SELECT_SQL" -o /dev/null 2>"$TMP/$path.run.err"
    } 2>"$TMP/$path.time" || die "$path: $SELECT_SQL failed: $(tail -n 5 "$TMP/$path.run.err")"
    agent1=$(tree_cpu_ticks "$AGENT_PID") conn1=$(path_cpu "$path")
    read -r wall user sys <"$TMP/$path.time"
    record "$path" wall_s "$wall"
    record "$path" psql_cpu_s "$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f\n", u + s }')"
    if [[ $path != direct ]]; then
        record "$path" agent_cpu_s "$(secs $((agent1 - agent0)))"
        # path_cpu counts the agent too: what is left is `hoop connect`.
        record "$path" connect_cpu_s "$(secs $((conn1 - conn0 - (agent1 - agent0))))"
        cpu=", CPU s: agent $(secs $((agent1 - agent0))), hoop connect $(secs $((conn1 - conn0 - (agent1 - agent0))))"
    fi
    t=$(awk -v b="$RESULT_BYTES" -v w="$wall" 'BEGIN { printf "%.1f\n", b / 1e6 / w }')
    log "$path: $wall s ($t MB/s of psql output)$cpu"
}

for ((round = 0; round < ROUNDS; round++)); do
    order=()
    for ((i = 0; i < ${#PATHS[@]}; i++)); do order+=("${PATHS[(i + round) % ${#PATHS[@]}]}"); done
    log "round $((round + 1)) of $ROUNDS: ${order[*]}; load $(load_now)"
    for path in "${order[@]}"; do select_run "$path"; done
done
kill -0 "$AGENT_PID" 2>/dev/null || die "hoop-agent exited during the runs"

# ------------------------------------------------------------ audit

# The statement events of the masked `select *` (the check and every
# round); the audit writer commits every few milliseconds, so wait for
# them.
AUDIT="$AGENT_DIR/audit/audit.jsonl"
audit_summary() {
    python3 - "$AUDIT" "$SELECT_SQL" <<'PY'
import json, sys
path, sql = sys.argv[1], sys.argv[2]
by_conn = {}
for line in open(path, encoding="utf-8"):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if e.get("text") != sql or "rows" not in e:
        continue
    by_conn.setdefault(e.get("connection"), []).append(e)
mask = by_conn.get("pgmask", [])
plain = by_conn.get("pg", [])
print(f"events={len(mask)}")
print(f"plain_events={len(plain)}")
print(f"plain_masked={sum(1 for e in plain if e.get('masked'))}")
if mask:
    values = sorted({(e.get("masked") or {}).get("values", 0) for e in mask})
    last = mask[-1].get("masked") or {}
    print("values=" + "/".join(str(v) for v in values))
    print(f"rows={mask[-1].get('rows')}")
    print("detectors=" + ", ".join(f"{k} {v}" for k, v in sorted(last.get("detectors", {}).items())))
    print("columns=" + ", ".join(sorted(last.get("columns", []))))
PY
}
for ((i = 0; i < 100; i++)); do
    audit_summary >"$TMP/audit.summary"
    [[ $(value "$TMP/audit.summary" events) -lt $((ROUNDS + 1)) ]] || break
    sleep 0.1
done
AUDIT_EVENTS=$(value "$TMP/audit.summary" events)
((AUDIT_EVENTS == ROUNDS + 1)) || die "expected $((ROUNDS + 1)) audit events of the masked select, found $AUDIT_EVENTS"
[[ $(value "$TMP/audit.summary" plain_masked) == 0 ]] || die "the audit log says the unmasked connection masked values"
MASKED_VALUES=$(value "$TMP/audit.summary" values)
log "audit: $AUDIT_EVENTS events of the masked select, masked.values $MASKED_VALUES" \
    "($(value "$TMP/audit.summary" detectors))"

# ------------------------------------------------------------ report

get() { # PATH KEY: the median of KEY's values for PATH, or "-"
    if [[ -s $RES/$1.$2 ]]; then median <"$RES/$1.$2"; else echo -; fi
}
all() { # PATH KEY: every value of KEY for PATH, comma-separated
    if [[ -s $RES/$1.$2 ]]; then paste -sd, "$RES/$1.$2" | sed 's/,/, /g'; else echo -; fi
}
# ratio4 A B: A/B to four decimals (for the verdict), or "-".
ratio4() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.4f\n", a / b }'
}

# paired PATH: PATH's wall time over the unmasked path's, round by round.
paired() { paired_median "$RES/$1.wall_s" "$RES/hoop.wall_s"; }

report() {
    local cpu path w off extra
    cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
    off=$(get hoop wall_s)
    echo "Masking benchmark (end to end), $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "- command: scripts/bench-mask.sh${ARGS:+ $ARGS}"
    echo "- machine: $(nproc) cores (${cpu:-unknown cpu}), Linux $(uname -r)"
    echo "- binaries: $BIN"
    echo "- server: $PG_VERSION, fsync/full_page_writes/synchronous_commit off, shared_buffers 256MB, table prewarmed"
    echo "- table $TABLE: $ROWS rows of five text columns (full_name, email, note, address, reference), $TABLE_BYTES bytes ($TABLE_PRETTY) with pg_total_relation_size; generated: $GEN_COUNTS"
    echo "- client: psql -X -At -c '$SELECT_SQL' -o /dev/null (no FETCH_COUNT: psql holds the whole result in memory; printed directly, it is $RESULT_BYTES bytes, which the MB/s below divide by the wall time); $ROUNDS round(s), path order rotated each round, median shown"
    echo "- masking on (detectors), connection pgdetect: detectors = \"all\", strategy = \"partial\" (as the MySQL benchmark's); masking on (detectors + hash rule), connection pgmask: the same plus column rule \"*name*\" with strategy \"hash\" (audit figures below are this connection's); masking off (connection pg): the same connection without [connection.mask]"
    echo "- correctness (once, untimed): $CHECK"
    echo "- audit of the masked select ($AUDIT_EVENTS statement events, rows $(value "$TMP/audit.summary" rows)): masked.values $MASKED_VALUES; detectors $(value "$TMP/audit.summary" detectors); columns $(value "$TMP/audit.summary" columns)"
    local warnings
    warnings=$(agent_warnings)
    echo "- hoop-agent warnings: ${warnings:-none}"
    echo "- load average (1, 5, 15 min): $LOAD_START at the start, $(load_now) at the end"
    echo
    echo "| path | wall s | MB/s of output | vs direct | psql CPU s | hoop-agent CPU s | hoop connect CPU s |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    for path in "${PATHS[@]}"; do
        w=$(get "$path" wall_s)
        printf '| %s | %s | %s | %s | %s | %s | %s |\n' "${LABEL[$path]}" "$w" \
            "$(awk -v b="$RESULT_BYTES" -v w="$w" 'BEGIN { if (w + 0 > 0) printf "%.1f\n", b / 1e6 / w; else print "-" }')" \
            "$(ratio "$w" "$(get direct wall_s)")" "$(get "$path" psql_cpu_s)" \
            "$(get "$path" agent_cpu_s)" "$(get "$path" connect_cpu_s)"
    done
    echo
    echo "| figure | value | target | result |"
    echo "| --- | ---: | --- | --- |"
    local p on
    for p in hoop_detect hoop_mask; do
        on=$(get "$p" wall_s)
        echo "| wall time, ${LABEL[$p]#hoop, } / off | $(ratio "$on" "$off") | ≤ 1.15 | $(verdict "$(ratio4 "$on" "$off")" 1.15 lower) |"
        if ((ROUNDS > 1)); then
            echo "| … median of the rounds' own ratios | $(ratio "$(paired "$p")" 1) | ≤ 1.15 | $(verdict "$(paired "$p")" 1.15 lower) |"
        fi
        echo "| hoop-agent CPU, ${LABEL[$p]#hoop, } / off | $(ratio "$(get "$p" agent_cpu_s)" "$(get hoop agent_cpu_s)") | | |"
        extra=$(awk -v a="$(get "$p" agent_cpu_s)" -v b="$(get hoop agent_cpu_s)" -v n="$ROWS" \
            'BEGIN { if (a == "-" || b == "-") print "-"; else printf "%.2f\n", (a - b) * 1e6 / n }')
        echo "| hoop-agent CPU added, ${LABEL[$p]#hoop, }, µs per row | $extra | | |"
    done
    if ((ROUNDS > 1)); then
        echo
        echo "Every round (wall s):"
        echo
        for path in "${PATHS[@]}"; do echo "- ${LABEL[$path]}: $(all "$path" wall_s)"; done
    fi
}

report >"$TMP/report.md"
echo
cat "$TMP/report.md"
if [[ -n $OUT ]]; then
    cp "$TMP/report.md" "$OUT"
    log "table written to $OUT"
fi
