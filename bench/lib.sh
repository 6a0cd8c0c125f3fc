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

# BENCH_STREAM=1: the same request with `"stream":true`.
if [ -n "${BENCH_STREAM:-}" ]; then
  sed -i 's/"max_tokens":128}/"max_tokens":128,"stream":true}/' "$OUT/keys.lua"
fi

# BENCH_PROMPTS=FILE.jsonl (a path from the repository's root, or
# absolute): each request's user message is the next row's `text` instead
# (the same message every time keeps every cache warm; real traffic does
# not), streamed if BENCH_STREAM is set. The bodies are built once, here.
if [ -n "${BENCH_PROMPTS:-}" ]; then
  python3 - "$BENCH_PROMPTS" >"$OUT/bodies.lua" <<'PY' || { echo "BENCH_PROMPTS: no usable rows in $BENCH_PROMPTS" >&2; exit 1; }
import json, os, sys
rows = [json.loads(l)["text"] for l in open(sys.argv[1]) if l.strip()]
if not rows:
    sys.exit(1)
print("bodies = {")
for text in rows:
    req = {"model": "mock", "max_tokens": 128, "messages": [
        {"role": "system", "content": "You are a concise assistant."},
        {"role": "user", "content": text}]}
    if os.environ.get("BENCH_STREAM"):
        req["stream"] = True
    print("  [==========[" + json.dumps(req) + "]==========],")
print("}")
PY
  sed -i -e "1i dofile(\"$OUT/bodies.lua\")" \
    -e 's/^  i = i % #keys + 1$/  i = i % #keys + 1; n = (n or 0) % #bodies + 1; body = bodies[n]/' "$OUT/keys.lua"
fi

# run KEYS_FILE: prints requests/s (non-2xx counts go to stderr).
run() { KEYS_FILE=$1 taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" -s "$OUT/keys.lua" http://127.0.0.1:18787/v1/chat/completions | awk '/Requests\/sec/ {print $2} /Non-2xx/ {print "non2xx", $4 > "/dev/stderr"}'; }

peak_rss() { awk '/VmHWM/ {print $2/1024}' /proc/$gw/status; }
