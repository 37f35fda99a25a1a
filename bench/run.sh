#!/usr/bin/env bash
# Load-test wxauth's token endpoint with wrk: a benchmark to run by hand, not a timed test.
#
#   bench/run.sh                     # build release, start a throw-away server, load it
#   BENCH_DURATION=30s bench/run.sh  # longer runs
#   BENCH_DB=postgres bench/run.sh   # the same on a throw-away PostgreSQL database (or mysql)
#
# Builds target/release/wxauth, starts the WeChat simulator (`wxauth simulator`) and `wxauth serve`
# on a fresh database (BENCH_DB: sqlite in a temp dir, the default; postgres or mysql: a database
# created for the run on the server at BENCH_POSTGRES_URL / BENCH_MYSQL_URL and dropped after)
# on free ports, registers three clients, the simulator's
# demo Mini Program and one WeChat identity, then runs wrk (32 connections, 2 threads, 10 s each)
# against
#   1. GET  /healthz                                   the baseline: routing + HTTP only
#   2. POST /oauth/token grant_type=client_credentials client auth + JWT signing
#   3. POST /oauth/token grant_type=flow               + identity lookup + refresh token write
#   4. a full Mini Program login: POST /api/wechat/ma/session with a fresh wx.login code (the
#      server calls the simulator's jscode2session, stores the session, mints a ticket), then
#      the flow grant redeeming that ticket. The codes are minted in bulk before wrk starts, so
#      the simulator's control API is not what is measured. Reported as logins/s.
#   5. the same login for BENCH_LOGIN_USERS (200) different people in turn, each signed in once
#      before the clock starts: one person's logins queue on that identity's lock (two logins of
#      one identity at once must not both create it), many people's logins do not.
# each with the rate limits off (WXAUTH_LIMITS=off), on in-process, and on through Redis
# (WXAUTH_REDIS_URL; skipped when no Redis answers at BENCH_REDIS_URL). Then, as a user comparing
# servers would, it installs node-oidc-provider 8 from npm into a cache directory
# (BENCH_PEER_CACHE, ~/.cache/wxauth-bench/peer) and loads its client_credentials grant the same way
# (bench/peer/oidc-provider.mjs; BENCH_PEER=0 skips it). With the limits on, every
# limit is raised far above the load, so that what is measured is what checking them costs, not
# refusals. Prints requests/s, p99 latency, non-2xx responses, the ratio to the same scenario with
# the limits off, and the server's CPU time per request (from /proc: less sensitive than
# requests/s to whatever else the machine is running), with its context switches and read/write
# system calls per request (steadier still: they count work, not time).
# Exits non-zero when any request failed (status >= 400 as wrk counts them, or socket errors).
# The targets on a 2-core machine (wrk on the same cores), reported, not enforced: token grants
# p99 < 20 ms and zero non-2xx; the flow grant <= 120 us of server CPU per request on SQLite and
# PostgreSQL, and on SQLite >= 1.5x the peer's client_credentials; >= 2,000 full Mini Program
# logins/s on SQLite; limits cost <= 10 % of throughput. On SQLite the report also states the CPU
# and login goals scaled by this run's client_credentials against the machine they were set on.
#
# Environment: BENCH_DURATION (10s), BENCH_CONNECTIONS (32), BENCH_THREADS (2),
# BENCH_MODES ("off local redis"), BENCH_REDIS_URL (redis://127.0.0.1:6379/0),
# BENCH_LOGIN_CODES (codes minted per login run, 40000), BENCH_LOGIN_USERS (200),
# BENCH_DB (sqlite | postgres | mysql), BENCH_POSTGRES_URL (postgres://postgres@127.0.0.1:5432/test),
# BENCH_MYSQL_URL (mysql://root@127.0.0.1:3306/test): a server wxauth may create a database on,
# BENCH_PEER (1), BENCH_PEER_CACHE, BENCH_SWEEP_ROWS (300000; SQLite only),
# BENCH_BIN (a wxauth binary to measure instead of building one; implies BENCH_SKIP_BUILD=1),
# BENCH_SKIP_BUILD=1 (use the existing release binary), BENCH_KEEP=1 (keep the temp dir and log).
set -euo pipefail

DURATION=${BENCH_DURATION:-10s}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
THREADS=${BENCH_THREADS:-2}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${BENCH_BIN:-"$ROOT/target/release/wxauth"}

say() { printf '\n== %s\n' "$*"; }
die() { printf 'bench: %s\n' "$*" >&2; exit 2; }

# --- tools -------------------------------------------------------------------------------------
if ! command -v wrk >/dev/null; then
    say "installing wrk (Debian package)"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq wrk >/dev/null
fi
for tool in wrk curl python3; do command -v "$tool" >/dev/null || die "$tool is required"; done

if [ "${BENCH_SKIP_BUILD:-0}" != 1 ] && [ -z "${BENCH_BIN:-}" ]; then
    say "cargo build --release"
    (cd "$ROOT" && cargo build --release --bin wxauth)
fi
[ -x "$BIN" ] || die "$BIN is missing (build it or unset BENCH_SKIP_BUILD)"

# --- a throw-away server -------------------------------------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/wxauth-bench.XXXXXX")
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        # give it a moment to shut down gracefully, then insist
        for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if declare -F drop_database >/dev/null; then drop_database; fi
    if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "bench: kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
SIM_PORT=$(free_port)
BASE="http://127.0.0.1:$PORT"
SIM="http://127.0.0.1:$SIM_PORT"
export WXAUTH_LISTEN="127.0.0.1:$PORT"
export WXAUTH_PUBLIC_URL="$BASE"
export WXAUTH_WECHAT_API_BASE="$SIM"
export WXAUTH_WECHAT_OPEN_BASE="$SIM"
DB=${BENCH_DB:-sqlite}
PG_ADMIN=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
MY_ADMIN=${BENCH_MYSQL_URL:-mysql://root@127.0.0.1:3306/test}
BENCH_DATABASE="wxauth_bench_$(python3 -c 'import secrets; print(secrets.token_hex(4))')"
DB_CREATED=0
url_base() { printf '%s' "${1%/*}"; } # the server part of a database URL
mysql_args() { # user, host and port of a mysql:// URL, as mysql(1) arguments
    python3 -c '
import sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
args = ["-h", u.hostname or "127.0.0.1", "-P", str(u.port or 3306), "-u", u.username or "root"]
if u.password: args.append("-p" + urllib.parse.unquote(u.password))
print(" ".join(args))' "$1"
}
db_sql() { # SQL on the bench database, from stdin
    case $DB in
        sqlite) python3 -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.executescript(sys.stdin.read()); c.commit()' "$TMP/wxauth.db" ;;
        postgres) psql -q -v ON_ERROR_STOP=1 "$(url_base "$PG_ADMIN")/$BENCH_DATABASE" >/dev/null ;;
        # shellcheck disable=SC2046
        mysql) mysql $(mysql_args "$MY_ADMIN") "$BENCH_DATABASE" ;;
    esac
}
drop_database() {
    [ "$DB_CREATED" = 1 ] || return 0
    case $DB in
        postgres) psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS $BENCH_DATABASE WITH (FORCE)" >/dev/null 2>&1 || true ;;
        # shellcheck disable=SC2046
        mysql) mysql $(mysql_args "$MY_ADMIN") -e "DROP DATABASE IF EXISTS $BENCH_DATABASE" >/dev/null 2>&1 || true ;;
    esac
}
case $DB in
    sqlite) export DATABASE_URL="sqlite://$TMP/wxauth.db?mode=rwc" ;;
    postgres)
        command -v psql >/dev/null || die "BENCH_DB=postgres needs psql"
        psql -q "$PG_ADMIN" -c "CREATE DATABASE $BENCH_DATABASE" >/dev/null || die "cannot create a database at $PG_ADMIN"
        DB_CREATED=1
        export DATABASE_URL="$(url_base "$PG_ADMIN")/$BENCH_DATABASE" ;;
    mysql)
        command -v mysql >/dev/null || die "BENCH_DB=mysql needs mysql(1)"
        # shellcheck disable=SC2046
        mysql $(mysql_args "$MY_ADMIN") -e "CREATE DATABASE $BENCH_DATABASE" || die "cannot create a database at $MY_ADMIN"
        DB_CREATED=1
        export DATABASE_URL="$(url_base "$MY_ADMIN")/$BENCH_DATABASE" ;;
    *) die "BENCH_DB must be sqlite, postgres or mysql, not $DB" ;;
esac
export WXAUTH_MASTER_KEY
WXAUTH_MASTER_KEY=$(python3 -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())')
export RUST_LOG=${RUST_LOG:-warn}
rand_hex() { python3 -c "import secrets; print(secrets.token_hex($1))"; }

# Run wxauth from the temp dir so that no .env or key file of the checkout is picked up.
wx() { (cd "$TMP" && "$BIN" "$@"); }

say "setting up clients and a WeChat identity in $TMP"
CC_ID=bench-cc
CC_SECRET="bench-cc-$(rand_hex 16)"
FLOW_ID=bench-flow
FLOW_SECRET="bench-flow-$(rand_hex 16)"
APPID="wx$(rand_hex 8)"
OPENID="o-bench-$(rand_hex 8)"
UNIONID="u-bench-$(rand_hex 8)"

setup() { # wxauth CLI arguments; output goes to setup.log (the flow client's warning is expected)
    wx "$@" >>"$TMP/setup.log" 2>&1 || { cat "$TMP/setup.log" >&2; die "wxauth $1 $2 failed"; }
}
setup migrate
setup client create --client-id "$CC_ID" --secret "$CC_SECRET" \
    --grant-types client_credentials --scopes api
setup client create --client-id "$FLOW_ID" --secret "$FLOW_SECRET" \
    --grant-types flow,refresh_token --scopes flow --flow-ticket optional
setup app add --appid "$APPID" --kind official_account --secret "bench-app-secret-$(rand_hex 8)"
# The simulator's demo Mini Program (src/simulator/demo.rs) and a client that redeems its tickets.
MP_APPID=wxd000000000000001
MP_USER=alice
MP_ID=bench-mp
MP_SECRET="bench-mp-$(rand_hex 16)"
setup app add --appid "$MP_APPID" --kind mini_program --secret d0000000000000000000000000000001
setup client create --client-id "$MP_ID" --secret "$MP_SECRET" \
    --grant-types flow --scopes flow --flow-ticket required

# One WeChat identity, as if wxauth had obtained it from WeChat (columns: migration/src).
NOW=$(date +%s)
db_sql <<SQL
INSERT INTO flow_user (union_id, created_at, updated_at) VALUES ('$UNIONID', $NOW, $NOW);
INSERT INTO wx_user (appid, open_id, union_id, flow_user_id, create_time, update_time, del_flag)
  SELECT '$APPID', '$OPENID', '$UNIONID', id, $NOW, $NOW, FALSE FROM flow_user WHERE union_id = '$UNIONID';
SQL

# --- the simulator and the server ----------------------------------------------------------------
say "starting the WeChat simulator on $SIM"
(cd "$TMP" && exec "$BIN" simulator --listen "127.0.0.1:$SIM_PORT") >"$TMP/simulator.log" 2>&1 &
SIM_PID=$!
for _ in $(seq 300); do
    curl -fsS "$SIM/__sim/apps" >/dev/null 2>&1 && break
    kill -0 "$SIM_PID" 2>/dev/null || { cat "$TMP/simulator.log" >&2; die "the simulator exited"; }
    sleep 0.1
done
stop_simulator() { kill "$SIM_PID" 2>/dev/null || true; wait "$SIM_PID" 2>/dev/null || true; }
trap 'stop_simulator; cleanup' EXIT

REDIS_URL=${BENCH_REDIS_URL:-redis://127.0.0.1:6379/0}
# Every limit, raised far above what one machine can send: the limits are checked, never hit.
LIMIT_VARS=(WXAUTH_LIMIT_AUTHORIZE WXAUTH_LIMIT_H5_ENTRY WXAUTH_LIMIT_CALLBACK WXAUTH_LIMIT_MA_SESSION
    WXAUTH_LIMIT_MA_USER WXAUTH_LIMIT_MA_PHONE WXAUTH_LIMIT_USERINFO WXAUTH_LIMIT_INTROSPECTION
    WXAUTH_LIMIT_COMPONENT_PUSH WXAUTH_LIMIT_TOKEN_CLIENT)

start_server() { # mode: off | local | redis
    local mode=$1
    unset WXAUTH_LIMITS WXAUTH_REDIS_URL WXAUTH_REDIS_PREFIX
    for v in "${LIMIT_VARS[@]}"; do unset "$v"; done
    case $mode in
        off) export WXAUTH_LIMITS=off ;;
        local | redis)
            for v in "${LIMIT_VARS[@]}"; do export "$v=100000000/s"; done
            if [ "$mode" = redis ]; then
                export WXAUTH_REDIS_URL="$REDIS_URL"
                export WXAUTH_REDIS_PREFIX="wxauth-bench-$(rand_hex 6)"
            fi
            ;;
    esac
    say "starting wxauth serve on $BASE (limits: $mode)"
    (cd "$TMP" && exec "$BIN" serve) >"$TMP/server-$mode.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 300); do
        curl -fsS "$BASE/healthz" >/dev/null 2>&1 && break
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$TMP/server-$mode.log" >&2; die "the server exited"; }
        sleep 0.1
    done
    curl -fsS "$BASE/healthz" >/dev/null || { tail -n 50 "$TMP/server-$mode.log" >&2; die "the server never became healthy"; }
}

stop_server() {
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

# --- wrk scripts --------------------------------------------------------------------------------
basic() { printf '%s:%s' "$1" "$2" | base64 -w0; }

# `done` prints one machine-readable line; the shell turns it into the table below.
cat >"$TMP/report.lua" <<'LUA'
done = function(summary, latency, requests)
    local e = summary.errors
    io.write(string.format("BENCH rps=%.1f p50_ms=%.2f p99_ms=%.2f requests=%d non2xx=%d socket_errors=%d\n",
        summary.requests / (summary.duration / 1e6),
        latency:percentile(50) / 1000, latency:percentile(99) / 1000,
        summary.requests, e.status, e.connect + e.read + e.write + e.timeout))
end
LUA
post_script() { # file authorization body
    cat >"$1" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic $2"
wrk.body = "$3"
$(cat "$TMP/report.lua")
LUA
}
CC_BODY="grant_type=client_credentials&scope=api"
FLOW_BODY="grant_type=flow&scope=flow&appId=$APPID&openId=$OPENID&unionId=$UNIONID"
post_script "$TMP/cc.lua" "$(basic "$CC_ID" "$CC_SECRET")" "$CC_BODY"
post_script "$TMP/flow.lua" "$(basic "$FLOW_ID" "$FLOW_SECRET")" "$FLOW_BODY"

# The login: each wrk thread takes every THREADS-th code of the codes file; a connection that has
# a ticket waiting redeems it (flow grant), otherwise it starts the next login with a fresh code.
login_script() { # script codes: a wrk script that signs in with the codes in the file codes
    cat >"$1" <<LUA
local thread_count = 0
function setup(thread)
    thread:set("thread_index", thread_count)
    thread:set("thread_total", $THREADS)
    thread_count = thread_count + 1
end
local codes, next_code, waiting = {}, 1, {}
function init(args)
    local index = 0
    for line in io.lines("$2") do
        if index % thread_total == thread_index then codes[#codes + 1] = line end
        index = index + 1
    end
end
function request()
    local ticket = table.remove(waiting)
    if ticket then
        return wrk.format("POST", "/oauth/token", {
            ["Content-Type"] = "application/x-www-form-urlencoded",
            ["Authorization"] = "Basic $(basic "$MP_ID" "$MP_SECRET")",
        }, "grant_type=flow&scope=flow&appId=$MP_APPID&openId=" .. ticket.open_id ..
            "&unionId=" .. ticket.union_id .. "&ticket=" .. ticket.ticket)
    end
    local code = codes[next_code] or "exhausted"
    next_code = next_code + 1
    return wrk.format("POST", "/api/wechat/ma/session", { ["Content-Type"] = "application/json" },
        '{"appId":"$MP_APPID","code":"' .. code .. '"}')
end
function response(status, headers, body)
    local ticket = body:match('"ticket":"([^"]+)"')
    if ticket then
        waiting[#waiting + 1] = {
            ticket = ticket,
            open_id = body:match('"openId":"([^"]+)"') or "",
            union_id = body:match('"unionId":"([^"]+)"') or "",
        }
    end
end
$(cat "$TMP/report.lua")
LUA
}

login_script "$TMP/login.lua" "$TMP/codes.txt"
login_script "$TMP/login-users.lua" "$TMP/codes-users.txt"

mint_codes() { # count: fresh wx.login codes for the demo user, one per line in codes.txt
    curl -fsS -H 'Content-Type: application/json' \
        -d "{\"appid\":\"$MP_APPID\",\"user\":\"$MP_USER\",\"count\":$1}" "$SIM/__sim/codes/js" |
        python3 -c 'import json, sys; print("\n".join(json.load(sys.stdin)["codes"]))' >"$TMP/codes.txt"
}

LOGIN_USERS=${BENCH_LOGIN_USERS:-200}
# users count: the simulator's people bench-0 … bench-(users-1), each signed in once (the first
# time: the server creates the identity and its account), then count codes taken in turn from
# each, one per line in codes-users.txt: what wrk measures are returning logins.
mint_user_codes() {
    python3 - "$SIM" "$BASE" "$MP_APPID" "$1" "$2" "$TMP/codes-users.txt" <<'PY'
import json, sys, urllib.request
sim, base, appid, users, count, out = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
def post(url, body):
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as answer:
        return json.load(answer)
per_user = []
for i in range(users):
    user = f"bench-{i}"
    post(f"{sim}/__sim/users", {"id": user, "nickname": user})
    codes = post(f"{sim}/__sim/codes/js", {"appid": appid, "user": user, "count": count // users + 2})["codes"]
    post(f"{base}/api/wechat/ma/session", {"appId": appid, "code": codes.pop()})
    per_user.append(codes)
with open(out, "w") as f:
    f.write("\n".join(per_user[i % users][i // users] for i in range(count)) + "\n")
PY
}

# --- runs ----------------------------------------------------------------------------------------
declare -A RPS P99 NON2XX STATUS CPU_US SIM_CPU_US CTX IO

cpu_ticks() { # pid: utime + stime of the process, in clock ticks ("-" without /proc)
    if [ -n "$1" ] && [ -r "/proc/$1/stat" ]; then
        # Fields after the parenthesised command name: utime and stime are the 12th and 13th.
        sed -E 's/^.*\) //' "/proc/$1/stat" | awk '{print $12 + $13}'
    else
        echo -
    fi
}
server_cpu_ticks() { cpu_ticks "$SERVER_PID"; }
# Two counts that move far less than CPU time on a shared machine: the server's context switches
# (voluntary and not, summed over its live threads: each statement's hand-off to a database
# connection's task or thread and back shows here) and its read/write system calls (/proc's syscr
# and syscw: SQLite's page reads and WAL writes, and the responses written).
ctx_switches() { # pid
    if [ -n "$1" ] && [ -d "/proc/$1/task" ]; then
        cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ { n += $2 } END { print n + 0 }'
    else
        echo -
    fi
}
io_syscalls() { # pid
    if [ -n "$1" ] && [ -r "/proc/$1/io" ]; then
        awk '/^sysc[rw]:/ { n += $2 } END { print n + 0 }' "/proc/$1/io"
    else
        echo -
    fi
}
per_request() { # before, after, requests: a count per request, one decimal
    if [ "$1" != - ] && [ "$2" != - ] && [ "$3" -gt 0 ]; then
        python3 -c "print(f'{($2 - $1) / $3:.1f}')"
    else
        echo -
    fi
}
per_request_us() { # ticks before, ticks after, requests
    if [ "$1" != - ] && [ "$2" != - ] && [ "$3" -gt 0 ]; then
        python3 -c "print(f'{($2 - $1) * 1e6 / $(getconf CLK_TCK) / $3:.0f}')"
    else
        echo -
    fi
}
FAILED=0

run() { # name path script [curl args for a single pre-flight request...]
    local name=$1 path=$2 script=$3; shift 3
    if [ $# -gt 0 ]; then
        say "$name: one request first"
        local code
        code=$(curl -sS -o "$TMP/preflight.out" -w '%{http_code}' "$@" "$BASE$path" || true)
        if [ "${code:0:1}" != 2 ]; then
            echo "HTTP $code: $(head -c 400 "$TMP/preflight.out")"
            STATUS[$name]="pre-flight HTTP $code"
            FAILED=1
            return
        fi
        echo "HTTP $code: $(head -c 160 "$TMP/preflight.out")..."
    fi
    say "$name: wrk -t$THREADS -c$CONNECTIONS -d$DURATION"
    local out line cpu_before cpu_after sim_before sim_after ctx_before io_before
    ctx_before=$(ctx_switches "$SERVER_PID")
    io_before=$(io_syscalls "$SERVER_PID")
    cpu_before=$(server_cpu_ticks)
    sim_before=$(cpu_ticks "${SIM_PID:-}")
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$script" "$BASE$path") ||
        { STATUS[$name]="wrk failed"; FAILED=1; return; }
    echo "$out" | grep -v '^BENCH'
    line=$(echo "$out" | grep '^BENCH') || { STATUS[$name]="no report"; FAILED=1; return; }
    local rps p99 non2xx sockerr
    rps=$(sed -E 's/.* rps=([0-9.]+).*/\1/' <<<"$line")
    p99=$(sed -E 's/.* p99_ms=([0-9.]+).*/\1/' <<<"$line")
    non2xx=$(sed -E 's/.* non2xx=([0-9]+).*/\1/' <<<"$line")
    sockerr=$(sed -E 's/.* socket_errors=([0-9]+).*/\1/' <<<"$line")
    cpu_after=$(server_cpu_ticks)
    sim_after=$(cpu_ticks "${SIM_PID:-}")
    local requests
    requests=$(sed -E 's/.* requests=([0-9]+).*/\1/' <<<"$line")
    CTX[$name]=$(per_request "$ctx_before" "$(ctx_switches "$SERVER_PID")" "$requests")
    IO[$name]=$(per_request "$io_before" "$(io_syscalls "$SERVER_PID")" "$requests")
    RPS[$name]=$rps; P99[$name]=$p99; NON2XX[$name]=$((non2xx + sockerr))
    CPU_US[$name]=$(per_request_us "$cpu_before" "$cpu_after" "$requests")
    SIM_CPU_US[$name]=$(per_request_us "$sim_before" "$sim_after" "$requests")
    STATUS[$name]=ok
    [ $((non2xx + sockerr)) -eq 0 ] || FAILED=1
}

MODES=${BENCH_MODES:-off local redis}
RAN_MODES=()
for mode in $MODES; do
    if [ "$mode" = redis ] && ! python3 - "$REDIS_URL" <<'PY' 2>/dev/null; then
import socket, sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
s = socket.create_connection((u.hostname or "127.0.0.1", u.port or 6379), timeout=1)
s.sendall(b"PING\r\n")
sys.exit(0 if s.recv(16).startswith(b"+PONG") else 1)
PY
        say "no Redis answers at $REDIS_URL: skipping the Redis run"
        continue
    fi
    RAN_MODES+=("$mode")
    start_server "$mode"
    [ "$mode" = "${MODES%% *}" ] && run healthz /healthz "$TMP/report.lua"
    run "client_credentials/$mode" /oauth/token "$TMP/cc.lua" -u "$CC_ID:$CC_SECRET" -d "$CC_BODY"
    run "flow/$mode" /oauth/token "$TMP/flow.lua" -u "$FLOW_ID:$FLOW_SECRET" -d "$FLOW_BODY"
    mint_codes "${BENCH_LOGIN_CODES:-40000}"
    run "mp_login/$mode" /api/wechat/ma/session "$TMP/login.lua"
    mint_user_codes "$LOGIN_USERS" "${BENCH_LOGIN_CODES:-40000}" ||
        die "could not sign in the $LOGIN_USERS people of mp_login_users (see the error above)"
    run "mp_login_users/$mode" /api/wechat/ma/session "$TMP/login-users.lua"
    stop_server
done

# --- the peer: node-oidc-provider, installed as a user comparing servers would --------------------
PEER_RAN=0
if [ "${BENCH_PEER:-1}" = 1 ]; then
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        say "no node/npm: skipping node-oidc-provider"
    else
        PEER_CACHE=${BENCH_PEER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wxauth-bench/peer}
        mkdir -p "$PEER_CACHE"
        if [ ! -d "$PEER_CACHE/node_modules/oidc-provider" ]; then
            say "installing node-oidc-provider 8 into $PEER_CACHE (npm)"
            (cd "$PEER_CACHE" && npm install --no-audit --no-fund --silent oidc-provider@8.8.1 >/dev/null)
        fi
        # ESM resolves packages beside the script, so the script runs from the cache directory.
        cp "$ROOT/bench/peer/oidc-provider.mjs" "$PEER_CACHE/"
        PEER_PORT=$(free_port)
        PEER_SECRET="bench-peer-$(rand_hex 16)"
        (cd "$PEER_CACHE" && exec node oidc-provider.mjs "$PEER_PORT" bench-peer "$PEER_SECRET") >"$TMP/peer.log" 2>&1 &
        SERVER_PID=$!
        for _ in $(seq 100); do
            curl -s -o /dev/null "http://127.0.0.1:$PEER_PORT/.well-known/openid-configuration" && break
            sleep 0.1
        done
        post_script "$TMP/peer.lua" "$(basic bench-peer "$PEER_SECRET")" "$CC_BODY"
        OUR_BASE=$BASE
        BASE="http://127.0.0.1:$PEER_PORT"
        say "node-oidc-provider $(cd "$PEER_CACHE" && node -p 'require("oidc-provider/package.json").version') on $BASE"
        run "peer_client_credentials" /token "$TMP/peer.lua" -u "bench-peer:$PEER_SECRET" -d "$CC_BODY"
        BASE=$OUR_BASE
        stop_server
        PEER_RAN=1
    fi
fi

# --- the janitor under load ------------------------------------------------------------------------
# 300,000 expired refresh tokens; `wxauth janitor` (the same sweep the server runs every 10
# minutes) deletes them in batches while wrk runs the flow grant: p99 during the sweep next to
# flow/off above. SQLite, whose single writer a one-statement DELETE held for seconds.
SWEEP_ROWS=${BENCH_SWEEP_ROWS:-300000}
[ "$DB" = sqlite ] || SWEEP_ROWS=0
if [ "$SWEEP_ROWS" -gt 0 ]; then
    say "inserting $SWEEP_ROWS expired refresh tokens"
    python3 - "$TMP/wxauth.db" "$SWEEP_ROWS" <<'PY'
import sqlite3, sys, time
db, rows = sys.argv[1], int(sys.argv[2])
now = int(time.time())
con = sqlite3.connect(db)
con.executemany(
    "INSERT INTO refresh_token (token_hash, family_id, client_id, owner_id, scope, extensions,"
    " expires_at, created_at) VALUES (?, 'bench-expired', 'bench-flow', '1', 'flow', '{}', ?, ?)",
    ((f"bench-expired-{i:08d}", now - 3600, now - 7200) for i in range(rows)))
con.commit()
PY
    start_server off
    (sleep 1; cd "$TMP" && WXAUTH_LIMITS=off "$BIN" janitor >"$TMP/janitor.out" 2>&1; date +%s.%N >"$TMP/janitor.end") &
    JANITOR_PID=$!
    SWEEP_START=$(date +%s.%N)
    run "flow_during_sweep/off" /oauth/token "$TMP/flow.lua"
    wait "$JANITOR_PID" || true
    SWEPT=$(grep -m1 "rows deleted" "$TMP/janitor.out" 2>/dev/null || echo "janitor failed")
    SWEEP_SECS=$(python3 -c "print(f'{float(open(\"$TMP/janitor.end\").read()) - $SWEEP_START - 1:.1f}')" 2>/dev/null || echo "?")
    stop_server
fi

# --- report --------------------------------------------------------------------------------------
say "results: $DB ($THREADS threads, $CONNECTIONS connections, $DURATION each, $(nproc) cores, wrk on the same machine, load average $(cut -d' ' -f1-3 /proc/loadavg))"
echo "mp_login counts logins (a session request and a flow grant each): requests/s / 2; mp_login: one person,"
echo "mp_login_users: $LOGIN_USERS people in turn"
printf '%-26s %12s %10s %9s %10s %12s %10s %8s %8s  %s\n' scenario requests/s p99_ms non-2xx vs_off server_cpu_us sim_cpu_us ctx_sw io_sys target
rows=(healthz)
for scenario in client_credentials flow mp_login mp_login_users; do
    for mode in "${RAN_MODES[@]}"; do rows+=("$scenario/$mode"); done
done
[ "$SWEEP_ROWS" -gt 0 ] && rows+=("flow_during_sweep/off")
[ "$PEER_RAN" = 1 ] && rows+=("peer_client_credentials")
for name in "${rows[@]}"; do
    if [ "${STATUS[$name]:-}" != ok ]; then
        printf '%-26s %s\n' "$name" "FAILED: ${STATUS[$name]:-not run}"
        continue
    fi
    rps=${RPS[$name]}; cpu=${CPU_US[$name]}; sim=-; ctx=${CTX[$name]:--}; io=${IO[$name]:--}
    if [ "${name%%/*}" = mp_login ] || [ "${name%%/*}" = mp_login_users ]; then
        rps=$(python3 -c "print(f'{${RPS[$name]} / 2:.1f}')")
        [ "$ctx" = - ] || ctx=$(python3 -c "print(f'{$ctx * 2:.1f}')")
        [ "$io" = - ] || io=$(python3 -c "print(f'{$io * 2:.1f}')")
        [ "$cpu" = - ] || cpu=$((cpu * 2))
        sim=${SIM_CPU_US[$name]}
        [ "$sim" = - ] || sim=$((sim * 2))
    fi
    base="${name%%/*}/off"
    [ "${name%%/*}" = flow_during_sweep ] && base="flow/off"
    read -r ratio verdict < <(python3 - "$rps" "${RPS[$base]:-0}" "${P99[$name]}" "${NON2XX[$name]}" "$name" "$cpu" "$DB" "${RPS[peer_client_credentials]:-0}" <<'PY'
import sys
rps, base, p99, bad, name, cpu, db, peer = sys.argv[1:]
rps, base, p99, bad, peer = float(rps), float(base), float(p99), int(bad), float(peer)
scenario = name.split("/")[0]
login = scenario in ("mp_login", "mp_login_users")
ratio = f"{rps / base:.2f}" if base and "/" in name and not login else "-"
misses = []
if scenario in ("client_credentials", "flow") and p99 >= 20:
    misses.append("p99<20ms")
if scenario == "flow" and cpu != "-" and db in ("sqlite", "postgres") and float(cpu) > 120:
    misses.append("cpu<=120us")
if name == "flow/off" and db == "sqlite" and peer and rps < 1.5 * peer:
    misses.append(f">=1.5x peer ({rps / peer:.2f}x)")
if login and db == "sqlite" and rps < 2000:
    misses.append(">=2000 logins/s")
if scenario == "flow_during_sweep" and p99 >= 50:
    misses.append("p99<50ms during the sweep")
if bad:
    misses.append("0 non-2xx")
if "/" in name and not name.endswith("/off") and not login and base and rps < 0.9 * base:
    misses.append("limits cost <= 10%")
print(ratio, "met" if not misses else "missed: " + ", ".join(misses))
PY
)
    printf '%-26s %12s %10s %9s %10s %12s %10s %8s %8s  %s\n' "$name" "$rps" "${P99[$name]}" "${NON2XX[$name]}" "$ratio" "$cpu" "$sim" "$ctx" "$io" "$verdict"
done
echo "(server_cpu_us is per request, for mp_login per login; sim_cpu_us is the WeChat simulator's"
echo " CPU per login; ctx_sw and io_sys are the server's context switches and read/write system calls,"
echo " per request or login: steadier than CPU time on a shared machine. peer_client_credentials is"
echo " node-oidc-provider's process: opaque tokens in memory.)"
if [ "$PEER_RAN" = 1 ] && [ "${STATUS[flow/off]:-}" = ok ] && [ "${STATUS[peer_client_credentials]:-}" = ok ]; then
    echo "flow/off against the peer's client_credentials: $(python3 -c "print(f'{${RPS[flow/off]} / ${RPS[peer_client_credentials]}:.2f}')")x (goal on SQLite: >= 1.5x)"
fi
# The goals were set on a machine where client_credentials on SQLite cost 48 us of CPU at
# 32,485 requests/s (issue 19). Machines differ by more than the goals' margins, so the report also
# scales them by this run's own client_credentials: the same yardstick, measured in the same run.
if [ "$DB" = sqlite ] && [ "${STATUS[client_credentials/off]:-}" = ok ]; then
    python3 - "${CPU_US[client_credentials/off]}" "${RPS[client_credentials/off]}" \
        "${CPU_US[flow/off]:--}" "${RPS[mp_login/off]:-0}" "${RPS[mp_login_users/off]:-0}" <<'PY'
import sys
cc_cpu, cc_rps = float(sys.argv[1]), float(sys.argv[2])
flow_cpu, logins = sys.argv[3], [float(r) / 2 for r in sys.argv[4:6] if float(r) > 0]
print(f"scaled to this machine by client_credentials/off ({cc_cpu:.0f} us, {cc_rps:.0f}/s here;"
      " 48 us, 32,485/s where the goals were set):")
if flow_cpu != "-":
    goal = 120 * cc_cpu / 48
    verdict = "met" if float(flow_cpu) <= goal else "missed"
    print(f"  flow/off CPU {flow_cpu} us against <= {goal:.0f} us (120 us x {cc_cpu:.0f}/48): {verdict}")
if logins:
    goal = 2000 * cc_rps / 32485
    verdict = "met" if min(logins) >= goal else "missed"
    shown = " and ".join(f"{l:.0f}" for l in logins)
    print(f"  logins/s {shown} against >= {goal:.0f} (2,000 x {cc_rps:.0f}/32,485): {verdict}")
PY
fi
if [ "$SWEEP_ROWS" -gt 0 ]; then
    echo "flow_during_sweep: $SWEPT in ${SWEEP_SECS} s (the sweep ran inside the wrk run; target p99 < 50 ms)"
fi

if [ "$FAILED" -ne 0 ]; then
    echo
    echo "bench: some requests failed (non-2xx, socket errors or a failed pre-flight); server log tails:"
    for mode in "${RAN_MODES[@]}"; do tail -n 20 "$TMP/server-$mode.log"; done
    exit 1
fi
