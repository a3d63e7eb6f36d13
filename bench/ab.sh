#!/usr/bin/env bash
# A/B of two Paygate builds (or one build under two environments) side by side (bench/ANALYSIS.md):
# both nodes start fresh from their builds (dist/main.js, compiled first), pinned to CPU 1, on one PostgreSQL database; both get the same warm-up mix of
# routes (whoami, /healthz, a refusal on /v1/clients, with AUTH), so they start from like states; then
# bench/side-by-side.mjs loads the two at once from CPU 0, in both orders, and the geometric mean of
# the two medians is printed (B / A: above 1 means B is faster).
#
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/test bench/ab.sh <dirA> <dirB> [path=/v1/auth/whoami] [windows=5]
#
# Env: A_ENV / B_ENV (extra "NAME=value ..." for node A / B), AUTH (the Authorization header of every
# request, default "Bearer sk_short": a malformed token; empty for none), B_PATH (another path for node B,
# to compare two routes of one build), PORT_A / PORT_B (18081 / 18082).
# Two processes of one build can still differ by several per cent (bench/ANALYSIS.md): repeat an A/B on
# new nodes before believing a small difference. Traffic goes only to 127.0.0.1. The nodes are stopped at the end, whatever happens.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
dir_a="$(cd "$1" && pwd)"; dir_b="$(cd "$2" && pwd)"
path="${3:-/v1/auth/whoami}"; windows="${4:-5}"; path_b="${B_PATH:-$path}"
port_a="${PORT_A:-18081}"; port_b="${PORT_B:-18082}"
: "${DATABASE_URL:?set DATABASE_URL to a PostgreSQL server both nodes share}"
export AUTH="${AUTH-Bearer sk_short}"
work="$(mktemp -d)"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT

openssl genpkey -algorithm ed25519 -out "$work/audit.pem" 2>/dev/null
secret() { node -e 'console.log(require("node:crypto").randomBytes(24).toString("hex"))'; }
pepper="ab-pepper-$(secret)"; session="ab-session-$(secret)"

# Each build runs as it ships (`node dist/main.js`, what `npm start` runs), compiled here first: a
# TypeScript loader in the process can change its speed (bench/ANALYSIS.md).
for dir in "$dir_a" "$dir_b"; do (cd "$dir" && node node_modules/typescript/bin/tsc -p tsconfig.json); done
start() { # dir port extra-env log -> pid
  (cd "$1" && exec env $3 PORT="$2" DATABASE_URL="$DATABASE_URL" PAYGATE_SECRET_PEPPER="$pepper" \
    PAYGATE_SESSION_SECRET="$session" PAYGATE_AUDIT_SIGNING_KEY="$(cat "$work/audit.pem")" \
    PAYGATE_ADMIN_EMAIL=ab@example.com PAYGATE_ADMIN_PASSWORD='Ab-Bench-Password-123!' LOG_LEVEL=warn \
    taskset -c 1 node dist/main.js >"$4" 2>&1) &
  echo $!
}
ready() { for _ in $(seq 1 90); do curl -sf -o /dev/null "http://127.0.0.1:$1/readyz" && return 0; sleep 1; done; echo "node on $1 not ready:" >&2; cat "$2" >&2; exit 1; }

pid_a="$(start "$dir_a" "$port_a" "${A_ENV:-}" "$work/a.log")"; pids+=("$pid_a")
ready "$port_a" "$work/a.log"
pid_b="$(start "$dir_b" "$port_b" "${B_ENV:-}" "$work/b.log")"; pids+=("$pid_b")
ready "$port_b" "$work/b.log"

cd "$here"
auth_header=(); [ -n "$AUTH" ] && auth_header=(-H "authorization: $AUTH")
for route in /v1/auth/whoami /healthz /v1/clients /v1/auth/whoami /healthz; do
  for port in "$port_a" "$port_b"; do taskset -c 0 npx autocannon -c 10 -d 2 "${auth_header[@]}" "http://127.0.0.1:$port$route" >/dev/null 2>&1; done
done

median_of() { tail -n 1 | awk '{ print $2 }'; }
ab="$(PIDS="$pid_a,$pid_b" taskset -c 0 node bench/side-by-side.mjs "http://127.0.0.1:$port_a$path" "http://127.0.0.1:$port_b$path_b" "$windows" | median_of)"
ba="$(PIDS="$pid_b,$pid_a" taskset -c 0 node bench/side-by-side.mjs "http://127.0.0.1:$port_b$path_b" "http://127.0.0.1:$port_a$path" "$windows" | median_of)"
node -e 'const [ab, ba] = process.argv.slice(1).map(Number); console.log(`${process.argv[3]} vs ${process.argv[4]}: A/B ${ab.toFixed(3)} (A loaded first), B/A ${ba.toFixed(3)} (B first); B / A, geometric mean: ${Math.sqrt(ba / ab).toFixed(3)}`)' "$ab" "$ba" "$path" "$path_b"
