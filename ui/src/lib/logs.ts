// The Logs page's filters and their mapping to `/admin/logs` query
// parameters and to the page URL. Pure, unit-tested.

export const TIME_RANGES = [
  { value: '15m', label: 'Last 15 minutes', seconds: 15 * 60 },
  { value: '1h', label: 'Last hour', seconds: 3600 },
  { value: '24h', label: 'Last 24 hours', seconds: 86400 },
  { value: '7d', label: 'Last 7 days', seconds: 7 * 86400 },
  { value: '30d', label: 'Last 30 days', seconds: 30 * 86400 },
  { value: 'all', label: 'All time', seconds: null },
  { value: 'custom', label: 'Custom range…', seconds: null },
] as const;

export type TimeRange = (typeof TIME_RANGES)[number]['value'];

export const STATUS_CODES = [200, 400, 401, 403, 404, 408, 413, 429, 499, 500, 502, 503, 504] as const;

/** `safety_action` values of `/admin/logs`: a check took this action. */
export const SAFETY_ACTIONS = [
  { value: 'block', label: 'Blocked' },
  { value: 'flag', label: 'Flagged' },
  { value: 'log', label: 'Logged' },
] as const;

export interface LogFilter {
  range: TimeRange;
  /** `datetime-local` values, for the custom range. */
  from: string;
  to: string;
  key_id: string;
  model: string;
  status: string;
  safety: string;
}

export const EMPTY_LOG_FILTER: LogFilter = {
  range: '24h',
  from: '',
  to: '',
  key_id: '',
  model: '',
  status: '',
  safety: '',
};

export function isLogFilterSet(f: LogFilter): boolean {
  return (
    f.range !== EMPTY_LOG_FILTER.range || !!f.key_id || !!f.model.trim() || !!f.status || !!f.safety
  );
}

export interface LogQueryParams {
  since?: string;
  until?: string;
  key_id?: string;
  model?: string;
  status?: number;
  safety_action?: string;
}

/** The API query for a filter, with relative ranges resolved against `now`. */
export function logQuery(f: LogFilter, now: Date = new Date(), withSafety = false): LogQueryParams | { error: string } {
  const q: LogQueryParams = {};
  const r = TIME_RANGES.find((t) => t.value === f.range);
  if (r?.seconds) q.since = new Date(now.getTime() - r.seconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
  if (f.range === 'custom') {
    const from = f.from ? new Date(f.from) : null;
    const to = f.to ? new Date(f.to) : null;
    if (from && Number.isNaN(from.getTime())) return { error: 'The start of the range is not a valid time.' };
    if (to && Number.isNaN(to.getTime())) return { error: 'The end of the range is not a valid time.' };
    if (from && to && from >= to) return { error: 'The range must start before it ends.' };
    if (from) q.since = from.toISOString().replace(/\.\d{3}Z$/, 'Z');
    if (to) q.until = to.toISOString().replace(/\.\d{3}Z$/, 'Z');
  }
  if (f.key_id) q.key_id = f.key_id;
  if (f.model.trim()) q.model = f.model.trim();
  if (f.status) {
    const n = Number(f.status);
    if (!Number.isInteger(n) || n < 100 || n > 599) return { error: 'A status is a number from 100 to 599.' };
    q.status = n;
  }
  if (withSafety && f.safety) q.safety_action = f.safety;
  return q;
}

/** The filter as URL search parameters (defaults left out). */
export function filterToSearch(f: LogFilter): string {
  const p = new URLSearchParams();
  for (const k of Object.keys(EMPTY_LOG_FILTER) as (keyof LogFilter)[]) {
    const v = f[k].trim();
    if (v && v !== EMPTY_LOG_FILTER[k]) p.set(k, v);
  }
  const s = p.toString();
  return s ? `?${s}` : '';
}

/** A filter from URL search parameters; unknown values fall back to defaults. */
export function filterFromSearch(search: string): LogFilter {
  const p = new URLSearchParams(search);
  const f: LogFilter = { ...EMPTY_LOG_FILTER };
  for (const k of Object.keys(EMPTY_LOG_FILTER) as (keyof LogFilter)[]) {
    const v = p.get(k);
    if (v !== null) f[k] = v as never;
  }
  if (!TIME_RANGES.some((t) => t.value === f.range)) f.range = EMPTY_LOG_FILTER.range;
  return f;
}

/** Pretty-prints a JSON body; anything else is returned as is. */
export function prettyBody(body: string): { text: string; json: boolean } {
  try {
    return { text: JSON.stringify(JSON.parse(body), null, 2), json: true };
  } catch {
    return { text: body, json: false };
  }
}

/** Remembers the cursors of the pages seen, for Newer/Older paging. */
export class CursorStack {
  #stack: (string | null)[] = [null];

  get page(): number {
    return this.#stack.length;
  }

  get current(): string | null {
    return this.#stack[this.#stack.length - 1];
  }

  older(next: string): string {
    this.#stack.push(next);
    return next;
  }

  newer(): string | null {
    if (this.#stack.length > 1) this.#stack.pop();
    return this.current;
  }

  reset(): void {
    this.#stack = [null];
  }
}
