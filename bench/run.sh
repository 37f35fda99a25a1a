#!/usr/bin/env bash
# Load-test wxauth's token endpoint with wrk: a benchmark to run by hand, not a timed test.
#
#   bench/run.sh                     # build release, start a throw-away server, load it
#   BENCH_DURATION=30s bench/run.sh  # longer runs
#
# Builds target/release/wxauth, starts `wxauth serve` on a fresh SQLite database in a temp dir on
# a free port, registers two clients and one WeChat identity, then runs wrk (32 connections,
# 2 threads, 10 s each) against
#   1. GET  /healthz                                   the baseline: routing + HTTP only
#   2. POST /oauth/token grant_type=client_credentials client auth + JWT signing
#   3. POST /oauth/token grant_type=flow               + identity lookup + refresh token write
# and prints requests/s, p99 latency, non-2xx responses, each scenario's ratio to /healthz and the
# server's CPU time per request (from /proc: less sensitive than requests/s to whatever else the
# machine is running).
# Exits non-zero when any request failed (status >= 400 as wrk counts them, or socket errors).
# The issue's targets on a 2-core machine (wrk on the same cores): client_credentials >= 8,000/s,
# flow >= 4,000/s, p99 < 20 ms, zero non-2xx; they are reported, not enforced.
#
# Environment: BENCH_DURATION (10s), BENCH_CONNECTIONS (32), BENCH_THREADS (2),
# BENCH_SKIP_BUILD=1 (use the existing release binary), BENCH_KEEP=1 (keep the temp dir and log).
set -euo pipefail

DURATION=${BENCH_DURATION:-10s}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
THREADS=${BENCH_THREADS:-2}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN="$ROOT/target/release/wxauth"

say() { printf '\n== %s\n' "$*"; }
die() { printf 'bench: %s\n' "$*" >&2; exit 2; }

# --- tools -------------------------------------------------------------------------------------
if ! command -v wrk >/dev/null; then
    say "installing wrk (Debian package)"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq wrk >/dev/null
fi
for tool in wrk curl python3; do command -v "$tool" >/dev/null || die "$tool is required"; done

if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
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
    if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "bench: kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
export WXAUTH_LISTEN="127.0.0.1:$PORT"
export WXAUTH_PUBLIC_URL="$BASE"
export DATABASE_URL="sqlite://$TMP/wxauth.db?mode=rwc"
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
setup client create --client-id "$CC_ID" --secret "$CC_SECRET" \
    --grant-types client_credentials --scopes api
setup client create --client-id "$FLOW_ID" --secret "$FLOW_SECRET" \
    --grant-types flow,refresh_token --scopes flow --flow-ticket optional
setup app add --appid "$APPID" --kind official_account --secret "bench-app-secret-$(rand_hex 8)"

# One WeChat identity, as if wxauth had obtained it from WeChat (columns: migration/src).
python3 - "$TMP/wxauth.db" "$APPID" "$OPENID" "$UNIONID" <<'PY'
import sqlite3, sys, time
db, appid, openid, unionid = sys.argv[1:]
now = int(time.time())
con = sqlite3.connect(db)
cur = con.execute(
    "INSERT INTO flow_user (union_id, created_at, updated_at) VALUES (?, ?, ?)",
    (unionid, now, now))
con.execute(
    "INSERT INTO wx_user (appid, open_id, union_id, flow_user_id, create_time, update_time, del_flag)"
    " VALUES (?, ?, ?, ?, ?, ?, 0)",
    (appid, openid, unionid, cur.lastrowid, now, now))
con.commit()
PY

say "starting wxauth serve on $BASE"
(cd "$TMP" && exec "$BIN" serve) >"$TMP/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 300); do
    curl -fsS "$BASE/healthz" >/dev/null 2>&1 && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$TMP/server.log" >&2; die "the server exited"; }
    sleep 0.1
done
curl -fsS "$BASE/healthz" >/dev/null || { tail -n 50 "$TMP/server.log" >&2; die "the server never became healthy"; }

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

# --- runs ----------------------------------------------------------------------------------------
declare -A RPS P99 NON2XX STATUS CPU_US

server_cpu_ticks() { # utime + stime of the server, in clock ticks ("-" without /proc)
    if [ -r "/proc/$SERVER_PID/stat" ]; then
        # Fields after the parenthesised command name: utime and stime are the 12th and 13th.
        sed -E 's/^.*\) //' "/proc/$SERVER_PID/stat" | awk '{print $12 + $13}'
    else
        echo -
    fi
}
FAILED=0

run() { # name path script [curl args for a single pre-flight request...]
    local name=$1 path=$2 script=$3; shift 3
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
    say "$name: wrk -t$THREADS -c$CONNECTIONS -d$DURATION"
    local out line cpu_before cpu_after
    cpu_before=$(server_cpu_ticks)
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
    RPS[$name]=$rps; P99[$name]=$p99; NON2XX[$name]=$((non2xx + sockerr))
    local requests
    requests=$(sed -E 's/.* requests=([0-9]+).*/\1/' <<<"$line")
    CPU_US[$name]=-
    if [ "$cpu_before" != - ] && [ "$cpu_after" != - ] && [ "$requests" -gt 0 ]; then
        CPU_US[$name]=$(python3 -c "print(f'{($cpu_after - $cpu_before) * 1e6 / $(getconf CLK_TCK) / $requests:.0f}')")
    fi
    STATUS[$name]=ok
    [ $((non2xx + sockerr)) -eq 0 ] || FAILED=1
}

run healthz /healthz "$TMP/report.lua"
run client_credentials /oauth/token "$TMP/cc.lua" \
    -u "$CC_ID:$CC_SECRET" -d "$CC_BODY"
run flow /oauth/token "$TMP/flow.lua" \
    -u "$FLOW_ID:$FLOW_SECRET" -d "$FLOW_BODY"

# --- report --------------------------------------------------------------------------------------
say "results ($THREADS threads, $CONNECTIONS connections, $DURATION each, $(nproc) cores, wrk on the same machine)"
printf '%-20s %12s %10s %9s %10s %12s  %s\n' scenario requests/s p99_ms non-2xx vs_healthz server_cpu_us target
for name in healthz client_credentials flow; do
    if [ "${STATUS[$name]:-}" != ok ]; then
        printf '%-20s %s\n' "$name" "FAILED: ${STATUS[$name]:-not run}"
        continue
    fi
    case $name in
        client_credentials) min=8000 ;;
        flow) min=4000 ;;
        *) min="" ;;
    esac
    read -r ratio verdict < <(python3 - "${RPS[$name]}" "${RPS[healthz]:-0}" "${P99[$name]}" "${NON2XX[$name]}" "$min" <<'PY'
import sys
rps, base, p99, bad, target = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
ratio = f"{rps / base:.2f}" if base else "-"
if not target:
    verdict = "-"
else:
    misses = [m for m, ok in ((f">={target}/s", rps >= float(target)), ("p99<20ms", p99 < 20), ("0 non-2xx", bad == 0)) if not ok]
    verdict = "met" if not misses else "missed: " + ", ".join(misses)
print(ratio, verdict)
PY
)
    printf '%-20s %12s %10s %9s %10s %12s  %s\n' "$name" "${RPS[$name]}" "${P99[$name]}" "${NON2XX[$name]}" "$ratio" "${CPU_US[$name]}" "$verdict"
done

if [ "$FAILED" -ne 0 ]; then
    echo
    echo "bench: some requests failed (non-2xx, socket errors or a failed pre-flight); server log tail:"
    tail -n 20 "$TMP/server.log"
    exit 1
fi
