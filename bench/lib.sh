# Shared by the A/B benchmark scripts (keys.sh, bodies.sh): the harness's
# fixed-response upstream, one gateway process on CPU 0, wrk on CPU 1.
# Source it after setting SECS and CONNS; it defines BIN, OUT, ADMIN, TOKEN.
HARNESS=${HARNESS:-../shared/bench}
OUT=/tmp/assisters-bench/ab-run; mkdir -p "$OUT"
[ -n "${BENCH_NO_BUILD:-}" ] || cargo build --release --locked --bin assisters >/dev/null
BIN=${BIN_OVERRIDE:-$(realpath "${CARGO_TARGET_DIR:-target}")/release/assisters}

# start_upstream SECONDS_TO_HOLD
start_upstream() {
  "$HARNESS/bench.sh" --peers direct --hold "$1" >"$OUT/hold.log" 2>&1 &
  holder=$!
  trap 'kill $holder 2>/dev/null; kill $gw 2>/dev/null; true' EXIT
  for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:18080/v1/models && break; sleep 0.2; done
}

# start_gateway DATA_DIR: a fresh data dir, a `bench` tier far above what the
# machine serves (checked on every request, never refusing).
start_gateway() {
  rm -rf "$1"
  taskset -c 0 "$BIN" --data-dir "$1" serve --config "${BENCH_CONFIG:-bench/bench.toml}" >/dev/null 2>&1 &
  gw=$!
  for _ in $(seq 100); do [ -f "$1/runtime.json" ] && break; sleep 0.1; done
  "$BIN" --data-dir "$1" tiers create bench --rpm 4000000000 --tpm 4000000000 >/dev/null
  ADMIN=$(python3 -c "import json;print(json.load(open('$1/runtime.json'))['admin_listen'])")
  TOKEN=$(cat "$1/admin-token")
}

# admin METHOD PATH [JSON]
admin() {
  curl -sf -X "$1" -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
    ${3:+--data "$3"} "http://$ADMIN$2" >/dev/null
}

# The request every A/B run sends, with keys taken round-robin from KEYS_FILE.
cat >"$OUT/keys.lua" <<'LUA'
local keys = {}
for line in io.lines(os.getenv("KEYS_FILE")) do keys[#keys + 1] = line end
local body = '{"model":"mock","messages":[{"role":"system","content":"You are a concise assistant."},{"role":"user","content":"Summarize the following paragraph in one sentence. Performance work on network services is mostly about measurement discipline."}],"max_tokens":128}'
local i = math.random(#keys)
request = function()
  i = i % #keys + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. keys[i]}, body)
end
LUA

# run KEYS_FILE: prints requests/s (non-2xx counts go to stderr).
run() { KEYS_FILE=$1 taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" -s "$OUT/keys.lua" http://127.0.0.1:18787/v1/chat/completions | awk '/Requests\/sec/ {print $2} /Non-2xx/ {print "non2xx", $4 > "/dev/stderr"}'; }

peak_rss() { awk '/VmHWM/ {print $2/1024}' /proc/$gw/status; }
