// Live traffic from the admin event stream, aggregated so the page never
// renders per request: ticks go into a fixed ring (one slot per second for an
// hour), request events into a short recent list and per-10-second counters
// for the top keys and models. Pure and unit-tested; the store drives it.

/** `event: tick`, once per second. */
export interface TickEvent {
  /** Unix seconds. */
  at: number;
  requests: number;
  errors: number;
  tokens: number;
  p50_ms: number | null;
  p95_ms: number | null;
}

/** `event: request`, once per finished `/v1` request. */
export interface RequestEvent {
  id: string;
  /** Unix milliseconds. */
  at: number;
  key_id: string | null;
  model: string | null;
  status: number;
  error_code: string | null;
  latency_ms: number;
  prompt_tokens: number | null;
  completion_tokens: number | null;
  stream: boolean;
  safety: unknown;
}

export const HISTORY_SECONDS = 3600;
export const WINDOWS = [
  { minutes: 5, label: '5 min' },
  { minutes: 15, label: '15 min' },
  { minutes: 60, label: '60 min' },
] as const;

export interface ChartSeries {
  /** Unix seconds, one per second of the window. */
  x: number[];
  requests: (number | null)[];
  errors: (number | null)[];
  /** Tokens per minute: the mean per-second rate over the preceding minute, × 60. */
  tokensPerMin: (number | null)[];
  p50: (number | null)[];
  p95: (number | null)[];
}

/** One slot per second for the last hour; gaps (no tick) stay empty. */
export class TickHistory {
  readonly capacity: number;
  #at: Float64Array;
  #requests: Float64Array;
  #errors: Float64Array;
  #tokens: Float64Array;
  #p50: Float64Array;
  #p95: Float64Array;
  latest: TickEvent | null = null;

  constructor(capacity = HISTORY_SECONDS) {
    this.capacity = capacity;
    this.#at = new Float64Array(capacity).fill(-1);
    this.#requests = new Float64Array(capacity);
    this.#errors = new Float64Array(capacity);
    this.#tokens = new Float64Array(capacity);
    this.#p50 = new Float64Array(capacity).fill(NaN);
    this.#p95 = new Float64Array(capacity).fill(NaN);
  }

  push(t: TickEvent): void {
    const at = Math.floor(t.at);
    const i = ((at % this.capacity) + this.capacity) % this.capacity;
    this.#at[i] = at;
    this.#requests[i] = t.requests;
    this.#errors[i] = t.errors;
    this.#tokens[i] = t.tokens;
    this.#p50[i] = t.p50_ms ?? NaN;
    this.#p95[i] = t.p95_ms ?? NaN;
    if (!this.latest || at >= this.latest.at) this.latest = { ...t, at };
  }

  #slot(at: number): number {
    const i = ((at % this.capacity) + this.capacity) % this.capacity;
    return this.#at[i] === at ? i : -1;
  }

  /** The chart data for the `seconds` up to and including `end` (Unix seconds). */
  series(end: number, seconds: number): ChartSeries {
    const n = Math.min(seconds, this.capacity);
    const out: ChartSeries = { x: [], requests: [], errors: [], tokensPerMin: [], p50: [], p95: [] };
    // Rolling one-minute token sum, started 59 s before the window.
    let sum = 0;
    let have = 0;
    const ring: number[] = [];
    for (let at = end - n + 1 - 59; at <= end; at++) {
      const i = this.#slot(at);
      const tok = i < 0 ? null : this.#tokens[i];
      ring.push(tok === null ? NaN : tok);
      if (tok !== null) {
        sum += tok;
        have++;
      }
      if (ring.length > 60) {
        const gone = ring.shift()!;
        if (!Number.isNaN(gone)) {
          sum -= gone;
          have--;
        }
      }
      if (at <= end - n) continue;
      out.x.push(at);
      out.requests.push(i < 0 ? null : this.#requests[i]);
      out.errors.push(i < 0 ? null : this.#errors[i]);
      out.tokensPerMin.push(i < 0 || have === 0 ? null : (sum / have) * 60);
      out.p50.push(i < 0 || Number.isNaN(this.#p50[i]) ? null : this.#p50[i]);
      out.p95.push(i < 0 || Number.isNaN(this.#p95[i]) ? null : this.#p95[i]);
    }
    return out;
  }

  /** Totals over the window ending at `end`. */
  totals(end: number, seconds: number): { requests: number; errors: number; tokens: number; seconds: number } {
    let requests = 0;
    let errors = 0;
    let tokens = 0;
    let covered = 0;
    for (let at = end - Math.min(seconds, this.capacity) + 1; at <= end; at++) {
      const i = this.#slot(at);
      if (i < 0) continue;
      covered++;
      requests += this.#requests[i];
      errors += this.#errors[i];
      tokens += this.#tokens[i];
    }
    return { requests, errors, tokens, seconds: covered };
  }
}

export interface TopEntry {
  name: string;
  requests: number;
  errors: number;
  tokens: number;
}

const BUCKET_SECONDS = 10;
const MAX_NAMES_PER_BUCKET = 500;

/** Requests, errors and tokens per name (key or model) in 10-second buckets. */
export class TopCounter {
  #buckets = new Map<number, Map<string, TopEntry>>();

  add(atMs: number, name: string, isError: boolean, tokens: number): void {
    const b = Math.floor(atMs / 1000 / BUCKET_SECONDS);
    let m = this.#buckets.get(b);
    if (!m) {
      m = new Map();
      this.#buckets.set(b, m);
    }
    let e = m.get(name);
    if (!e) {
      if (m.size >= MAX_NAMES_PER_BUCKET) return;
      e = { name, requests: 0, errors: 0, tokens: 0 };
      m.set(name, e);
    }
    e.requests++;
    if (isError) e.errors++;
    e.tokens += tokens;
  }

  /** Drops buckets older than the history. */
  prune(nowSec: number): void {
    const oldest = Math.floor((nowSec - HISTORY_SECONDS) / BUCKET_SECONDS);
    for (const b of this.#buckets.keys()) if (b < oldest) this.#buckets.delete(b);
  }

  /** The `limit` names with the most requests in the last `seconds`. */
  top(nowSec: number, seconds: number, limit = 5): TopEntry[] {
    const from = Math.floor((nowSec - seconds) / BUCKET_SECONDS);
    const sum = new Map<string, TopEntry>();
    for (const [b, m] of this.#buckets) {
      if (b < from) continue;
      for (const e of m.values()) {
        const s = sum.get(e.name);
        if (s) {
          s.requests += e.requests;
          s.errors += e.errors;
          s.tokens += e.tokens;
        } else sum.set(e.name, { ...e });
      }
    }
    return [...sum.values()].sort((a, b) => b.requests - a.requests || a.name.localeCompare(b.name)).slice(0, limit);
  }
}

/** The newest `cap` items, newest first, without copying on every push. */
export class RecentBuffer<T> {
  #items: T[] = [];
  readonly cap: number;

  constructor(cap: number) {
    this.cap = cap;
  }

  push(item: T): void {
    this.#items.push(item);
    if (this.#items.length > this.cap * 4) this.#items = this.#items.slice(-this.cap);
  }

  snapshot(): T[] {
    return this.#items.slice(-this.cap).reverse();
  }

  get size(): number {
    return Math.min(this.#items.length, this.cap);
  }
}

export type SafetyTone = 'neutral' | 'success' | 'warning' | 'danger' | 'accent';

interface SafetyCheck {
  check?: string;
  name?: string;
  status?: string;
  action?: string;
  fired?: string[];
  reason?: string;
}

/**
 * A short word for a record's `safety` field (`{"checks":[…]}`, each check
 * with an `action`: pass, block, flag, log, or none when skipped). No check
 * says "Not checked" rather than claiming a pass; otherwise the strongest
 * action taken wins (block > flag > log).
 */
export function safetyOutcome(safety: unknown): { label: string; tone: SafetyTone; detail: string } {
  const raw = (safety ?? {}) as { checks?: unknown };
  const checks = (Array.isArray(raw.checks) ? raw.checks : []) as SafetyCheck[];
  if (checks.length === 0) return { label: 'Not checked', tone: 'neutral', detail: 'No safety check ran for this request.' };
  const name = (c: SafetyCheck) => c.check ?? c.name ?? 'check';
  const fired = (a: string) =>
    checks
      .filter((c) => c.action === a)
      .map((c) => (c.fired?.length ? `${name(c)}: ${c.fired.join(', ')}` : name(c)))
      .join('; ');
  if (checks.some((c) => c.action === 'block')) return { label: 'Blocked', tone: 'danger', detail: fired('block') };
  if (checks.some((c) => c.action === 'flag')) return { label: 'Flagged', tone: 'warning', detail: fired('flag') };
  if (checks.some((c) => c.action === 'log')) return { label: 'Logged', tone: 'accent', detail: fired('log') };
  const ran = checks.filter((c) => c.status !== 'skipped' && c.action !== 'none');
  if (ran.length === 0)
    return {
      label: 'Skipped',
      tone: 'neutral',
      detail: checks.map((c) => `${name(c)}${c.reason ? `: ${c.reason}` : ''}`).join('; '),
    };
  return { label: 'Passed', tone: 'success', detail: `Checked: ${[...new Set(ran.map(name))].join(', ')}` };
}

/** Status code → badge tone. */
export function statusTone(status: number): 'success' | 'warning' | 'danger' | 'neutral' {
  if (status >= 200 && status < 300) return 'success';
  if (status === 429 || (status >= 400 && status < 500)) return 'warning';
  if (status >= 500) return 'danger';
  return 'neutral';
}

/**
 * Did the request fail? As the gateway counts errors: a status of 400 or
 * more, or an error code on a 200 (a stream that broke after it started).
 */
export function isFailure(r: { status: number; error_code?: string | null }): boolean {
  return r.status >= 400 || r.error_code != null;
}

/** Prompt + completion tokens, or null when neither is known. */
export function totalTokens(r: { prompt_tokens?: number | null; completion_tokens?: number | null }): number | null {
  if (r.prompt_tokens == null && r.completion_tokens == null) return null;
  return (r.prompt_tokens ?? 0) + (r.completion_tokens ?? 0);
}
