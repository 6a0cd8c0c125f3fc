// Formatting helpers shared by the pages. Pure functions, unit-tested.

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** Parses an RFC 3339 string or Unix seconds; null for nothing or garbage. */
export function toDate(v: string | number | null | undefined): Date | null {
  if (v === null || v === undefined || v === '') return null;
  const d = typeof v === 'number' ? new Date(v * 1000) : new Date(v);
  return Number.isNaN(d.getTime()) ? null : d;
}

/** "just now", "5 minutes ago", "in 3 days", "Mar 4, 2026" past a month. */
export function relativeTime(v: string | number | null | undefined, now: Date = new Date()): string {
  const d = toDate(v);
  if (!d) return '—';
  const diff = d.getTime() - now.getTime();
  const abs = Math.abs(diff);
  if (abs < 45 * SECOND) return diff <= 0 ? 'just now' : 'in a few seconds';
  const rtf = new Intl.RelativeTimeFormat('en', { numeric: 'auto' });
  if (abs < 45 * MINUTE) return rtf.format(Math.round(diff / MINUTE), 'minute');
  if (abs < 22 * HOUR) return rtf.format(Math.round(diff / HOUR), 'hour');
  if (abs < 30 * DAY) return rtf.format(Math.round(diff / DAY), 'day');
  return formatDate(d);
}

/** "Mar 4, 2026". */
export function formatDate(v: string | number | Date | null | undefined): string {
  const d = v instanceof Date ? v : toDate(v);
  if (!d) return '—';
  return d.toLocaleDateString('en-US', { year: 'numeric', month: 'short', day: 'numeric' });
}

/** "Mar 4, 2026, 14:05:09" in the viewer's time zone. */
export function formatDateTime(v: string | number | Date | null | undefined): string {
  const d = v instanceof Date ? v : toDate(v);
  if (!d) return '—';
  return d.toLocaleString('en-US', {
    year: 'numeric',
    month: 'short',
    day: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
    hour12: false,
  });
}

/** 8388608 → "8 MiB", 1536 → "1.5 KiB". */
export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '—';
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  if (i === 0) return `${n} ${n === 1 ? 'byte' : 'bytes'}`;
  const s = v.toFixed(v < 10 && !Number.isInteger(v) ? 2 : 1).replace(/\.?0+$/, '');
  return `${s} ${units[i]}`;
}

/** "1,234". */
export function formatNumber(n: number): string {
  return n.toLocaleString('en-US');
}

/** `count` with the singular or plural noun: "1 key", "3 keys". */
export function plural(count: number, singular: string, pluralForm = `${singular}s`): string {
  return `${formatNumber(count)} ${count === 1 ? singular : pluralForm}`;
}

const DURATION_UNITS: Record<string, number> = {
  ms: 0.001,
  s: 1,
  sec: 1,
  secs: 1,
  m: 60,
  min: 60,
  mins: 60,
  h: 3600,
  hr: 3600,
  hrs: 3600,
  d: 86400,
  day: 86400,
  days: 86400,
  w: 604800,
  week: 604800,
  weeks: 604800,
  // humantime's spelling, which the gateway writes back ("2months 29days 2h 52m 48s").
  month: 2630016,
  months: 2630016,
  y: 31557600,
  year: 31557600,
  years: 31557600,
  hour: 3600,
  hours: 3600,
  minute: 60,
  minutes: 60,
  second: 1,
  seconds: 1,
};

/**
 * Parses a duration the way the gateway writes them ("5s", "2m", "1h 30m");
 * returns seconds, or null when it is not one.
 */
export function parseDuration(s: string): number | null {
  const t = s.trim();
  if (!t) return null;
  const re = /(\d+(?:\.\d+)?)\s*([a-z]+)/gi;
  let total = 0;
  let consumed = '';
  for (const m of t.matchAll(re)) {
    const unit = DURATION_UNITS[m[2].toLowerCase()];
    if (unit === undefined) return null;
    total += Number(m[1]) * unit;
    consumed += m[0];
  }
  if (consumed.replace(/\s+/g, '') !== t.replace(/\s+/g, '')) return null;
  return total;
}

/** Seconds → "2m", "1h 30m", "45s". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '—';
  if (seconds < 1) return `${Math.round(seconds * 1000)}ms`;
  const parts: string[] = [];
  let rest = Math.round(seconds);
  for (const [unit, size] of [
    ['d', 86400],
    ['h', 3600],
    ['m', 60],
    ['s', 1],
  ] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  return parts.join(' ') || '0s';
}

/** "12 ms", "1.2 s". */
export function formatLatency(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

/**
 * The base URL clients use for the OpenAI-compatible API, from the address
 * the gateway listens on. A wildcard address (0.0.0.0, ::) is reachable by
 * the host name this page was opened with.
 */
export function gatewayBaseUrl(listen: string | null | undefined, pageHost = 'localhost', tls = false): string | null {
  if (!listen) return null;
  const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(listen.trim());
  if (!m) return null;
  let host = m[1];
  if (host === '0.0.0.0' || host === '[::]') host = pageHost;
  return `${tls ? 'https' : 'http'}://${host}:${m[2]}/v1`;
}

/** "ask_YNsCrHaz" → "ask_YNsCrHaz…" so nobody mistakes it for a secret. */
export function maskedKey(prefix: string): string {
  return `${prefix}…`;
}

/** 1500000 → "1.5M", 12000 → "12K", 950 → "950". */
export function compactNumber(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '—';
  return new Intl.NumberFormat('en-US', { notation: 'compact', maximumFractionDigits: 1 }).format(n);
}

/** A retention duration as whole days ("30days" → 30, "2months 29days 2h 52m 48s" → 90); null if unreadable. */
export function durationDays(s: string | null | undefined): number | null {
  if (!s) return null;
  const secs = parseDuration(s);
  return secs === null ? null : Math.round(secs / 86400);
}
