#!/usr/bin/env bash
# The gateway's RSS sampled every 5 ms (a sampler on CPU 1), the state and
# kernel stack of any thread waiting on the disk (`D`), and the WAL's size
# every second, through json at CONNS connections for SECONDS, or with
# SEQUENCE=1 through bench/memory.sh's sequence (json, stream, json, SECONDS
# each). Prints the peak and median RSS, the samples over 42 MB, the largest
# WAL and the most common stacks of waiting threads. Reading other threads'
# kernel stacks needs root.
#   BENCH_CONFIG=bench/bench-engine.toml bench/rss-trace.sh [SECONDS] [CONNS]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-60}; CONNS=${2:-128}
source bench/lib.sh
start_upstream $((SECS * 3 + 60))
data=/tmp/assisters-bench/rss-trace-data
start_gateway "$data"
"$BIN" --data-dir "$data" keys create --name bench --tier bench --json |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])' >"$OUT/one.txt"
cat >"$OUT/sampler.py" <<'PY'
import os, sys, time
pid, out = int(sys.argv[1]), open(sys.argv[2], "w")
t0 = time.time()
while True:
    try:
        status = dict(l.split(":", 1) for l in open(f"/proc/{pid}/status").read().splitlines() if ":" in l)
        rss = int(status["VmRSS"].split()[0]) / 1024
        waiting = []
        for t in os.listdir(f"/proc/{pid}/task"):
            stat = open(f"/proc/{pid}/task/{t}/stat").read()
            if stat[stat.rindex(")") + 2] == "D":
                try:
                    stack = open(f"/proc/{pid}/task/{t}/stack").read().split("\n")
                except OSError:
                    stack = ["?"]
                waiting.append("<".join(f.split(" ")[-1].split("+")[0] for f in stack[:4] if f))
        out.write(f"{(time.time() - t0) * 1000:.0f} {rss:.1f} {'|'.join(waiting)}\n")
    except (FileNotFoundError, ProcessLookupError):
        break
    time.sleep(0.005)
PY
taskset -c 1 python3 "$OUT/sampler.py" "$gw" "$OUT/rss.txt" & sampler=$!
( while kill -0 "$gw" 2>/dev/null; do stat -c %s "$data/gateway.db-wal" 2>/dev/null || echo 0; sleep 1; done ) >"$OUT/wal.txt" & walw=$!
run "$OUT/one.txt"
if [ -n "${SEQUENCE:-}" ]; then
  sed 's/"max_tokens":128}/"max_tokens":128,"stream":true}/' "$OUT/keys.lua" >"$OUT/keys-stream.lua"
  KEYS_FILE=$OUT/one.txt taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" -s "$OUT/keys-stream.lua" \
    http://127.0.0.1:18787/v1/chat/completions >/dev/null
  run "$OUT/one.txt"
fi
kill "$sampler" "$walw" 2>/dev/null || true
python3 - "$OUT/rss.txt" "$OUT/wal.txt" <<'PY'
import collections, sys
rows = [l.rstrip("\n").split(" ", 2) for l in open(sys.argv[1]) if l.strip()]
rss = sorted(float(r[1]) for r in rows if int(r[0]) > 2000)
stacks = collections.Counter(s for r in rows if len(r) > 2 for s in r[2].split("|") if s)
wal = max((int(x) for x in open(sys.argv[2]) if x.strip()), default=0)
print(f"peak {max(float(r[1]) for r in rows):.1f} MB, median {rss[len(rss) // 2]:.1f} MB, "
      f"{sum(v > 42 for v in rss)} of {len(rss)} samples over 42 MB, largest WAL {wal / 1048576:.1f} MB")
for s, n in stacks.most_common(5):
    print(f"  {n:5d} waiting in {s}")
PY
