// Usage rollups from `/admin/usage` (rows per bucket × key × model), folded
// into what the Usage page charts: totals per day, per key and per model.
// Pure, unit-tested.

export interface UsageRow {
  /** RFC 3339 start of the bucket. */
  bucket: string;
  key_id: string | null;
  model: string | null;
  requests: number;
  errors: number;
  prompt_tokens: number;
  completion_tokens: number;
  latency_avg_ms: number | null;
  latency_p50_ms?: number | null;
  latency_p95_ms?: number | null;
  latency_p99_ms?: number | null;
  /** Tokens charged to limits without a usage report (absent from older gateways). */
  unreported_tokens?: number;
}

export interface UsageResponse {
  granularity: 'day' | 'hour';
  data: UsageRow[];
  /** The range held more rows than one answer carries: `data` is the newest. */
  truncated?: boolean;
}

export const USAGE_RANGES = [7, 30, 90] as const;
export type UsageRange = (typeof USAGE_RANGES)[number];

const DAY = 86400;

/** UTC midnights (Unix seconds) of the last `days` days, oldest first, today last. */
export function dayBuckets(days: number, now: Date = new Date()): number[] {
  const today = Math.floor(now.getTime() / 1000 / DAY) * DAY;
  return Array.from({ length: days }, (_, i) => today - (days - 1 - i) * DAY);
}

/** The `since` for a range: the first day's UTC midnight, RFC 3339. */
export function rangeSince(days: number, now: Date = new Date()): string {
  return new Date(dayBuckets(days, now)[0] * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export interface UsageEntry {
  /** key id or model; '' for requests without one. */
  name: string;
  requests: number;
  errors: number;
  prompt_tokens: number;
  completion_tokens: number;
  unreported_tokens: number;
  /** Mean latency weighted by requests, or null. */
  latency_avg_ms: number | null;
  /** Requests per day, aligned with the buckets. */
  daily: number[];
}

export interface UsageSummary {
  x: number[];
  requests: number[];
  errors: number[];
  prompt: number[];
  completion: number[];
  totals: UsageEntry;
  byKey: UsageEntry[];
  byModel: UsageEntry[];
}

function entry(name: string, n: number): UsageEntry & { _lat: number; _latN: number } {
  return {
    name,
    requests: 0,
    errors: 0,
    prompt_tokens: 0,
    completion_tokens: 0,
    unreported_tokens: 0,
    latency_avg_ms: null,
    daily: new Array(n).fill(0),
    _lat: 0,
    _latN: 0,
  };
}

function addTo(e: ReturnType<typeof entry>, r: UsageRow, i: number): void {
  e.requests += r.requests;
  e.errors += r.errors;
  e.prompt_tokens += r.prompt_tokens;
  e.completion_tokens += r.completion_tokens;
  e.unreported_tokens += r.unreported_tokens ?? 0;
  if (i >= 0) e.daily[i] += r.requests;
  if (r.latency_avg_ms != null && r.requests > 0) {
    e._lat += r.latency_avg_ms * r.requests;
    e._latN += r.requests;
  }
}

function finish(e: ReturnType<typeof entry>): UsageEntry {
  const { _lat, _latN, ...rest } = e;
  return { ...rest, latency_avg_ms: _latN ? _lat / _latN : null };
}

/** Folds rows into per-day series and per-key/per-model totals (most requests first). */
export function summarize(rows: UsageRow[], buckets: number[]): UsageSummary {
  const n = buckets.length;
  const index = new Map(buckets.map((b, i) => [b, i]));
  const requests = new Array(n).fill(0);
  const errors = new Array(n).fill(0);
  const prompt = new Array(n).fill(0);
  const completion = new Array(n).fill(0);
  const total = entry('', n);
  const keys = new Map<string, ReturnType<typeof entry>>();
  const models = new Map<string, ReturnType<typeof entry>>();
  for (const r of rows) {
    const at = Math.floor(Date.parse(r.bucket) / 1000 / DAY) * DAY;
    const i = index.get(at) ?? -1;
    if (i >= 0) {
      requests[i] += r.requests;
      errors[i] += r.errors;
      prompt[i] += r.prompt_tokens;
      completion[i] += r.completion_tokens;
    }
    addTo(total, r, i);
    const k = r.key_id ?? '';
    if (!keys.has(k)) keys.set(k, entry(k, n));
    addTo(keys.get(k)!, r, i);
    const m = r.model ?? '';
    if (!models.has(m)) models.set(m, entry(m, n));
    addTo(models.get(m)!, r, i);
  }
  const sort = (a: UsageEntry, b: UsageEntry) => b.requests - a.requests || a.name.localeCompare(b.name);
  return {
    x: buckets,
    requests,
    errors,
    prompt,
    completion,
    totals: finish(total),
    byKey: [...keys.values()].map(finish).sort(sort),
    byModel: [...models.values()].map(finish).sort(sort),
  };
}

/** Daily requests of the top `limit` entries, the rest summed as "Other". */
export function splitSeries(entries: UsageEntry[], limit = 5): { name: string; other: boolean; daily: number[] }[] {
  const top = entries.slice(0, limit).map((e) => ({ name: e.name, other: false, daily: e.daily }));
  const rest = entries.slice(limit);
  if (rest.length) {
    const daily = rest[0].daily.map((_, i) => rest.reduce((s, e) => s + e.daily[i], 0));
    top.push({ name: 'Other', other: true, daily });
  }
  return top;
}

/** The file name from a Content-Disposition header, or a fallback. */
export function dispositionFilename(header: string | null, fallback: string): string {
  if (!header) return fallback;
  const star = /filename\*=(?:UTF-8'')?([^;]+)/i.exec(header);
  if (star) {
    try {
      return decodeURIComponent(star[1].trim().replace(/^"|"$/g, ''));
    } catch {
      // fall through
    }
  }
  const plain = /filename="?([^";]+)"?/i.exec(header);
  return plain ? plain[1].trim() : fallback;
}
