// Pure helpers of the Keys page: filtering, sorting, expiry choices.

import type { Environment, KeyStatus, KeyView } from './api/client';

export const ENVIRONMENTS: Environment[] = ['dev', 'staging', 'prod'];
export const ENVIRONMENT_LABELS: Record<Environment, string> = {
  dev: 'Development',
  staging: 'Staging',
  prod: 'Production',
};
export const STATUSES: KeyStatus[] = ['active', 'expired', 'revoked'];

export interface KeyFilter {
  query: string;
  tier: string;
  environment: Environment | '';
  status: KeyStatus | '';
}

export const EMPTY_FILTER: KeyFilter = { query: '', tier: '', environment: '', status: '' };

export function isFiltered(f: KeyFilter): boolean {
  return Boolean(f.query.trim() || f.tier || f.environment || f.status);
}

/** Keys matching the filter; the query searches name, id, prefix and tier. */
export function filterKeys(keys: KeyView[], f: KeyFilter): KeyView[] {
  const q = f.query.trim().toLowerCase();
  return keys.filter(
    (k) =>
      (!f.tier || k.tier === f.tier) &&
      (!f.environment || k.environment === f.environment) &&
      (!f.status || k.status === f.status) &&
      (!q ||
        k.name.toLowerCase().includes(q) ||
        k.id.toLowerCase().includes(q) ||
        k.prefix.toLowerCase().includes(q) ||
        k.tier.toLowerCase().includes(q)),
  );
}

/** Active keys first, then newest first. */
export function sortKeys(keys: KeyView[]): KeyView[] {
  const rank: Record<KeyStatus, number> = { active: 0, expired: 1, revoked: 2 };
  return [...keys].sort(
    (a, b) =>
      rank[a.status] - rank[b.status] ||
      b.created_at.localeCompare(a.created_at) ||
      a.name.localeCompare(b.name, 'en', { numeric: true }) ||
      a.id.localeCompare(b.id),
  );
}

/** Distinct tiers in use, always including the default `free`. */
export function tiersInUse(keys: KeyView[]): string[] {
  return [...new Set(['free', ...keys.map((k) => k.tier)])].sort();
}

export interface ExpiryChoice {
  value: string;
  label: string;
  /** What goes into `expires_in`; absent for "never" and "custom". */
  expiresIn?: string;
}

export const EXPIRY_CHOICES: ExpiryChoice[] = [
  { value: 'never', label: 'Never' },
  { value: '7d', label: '7 days', expiresIn: '7d' },
  { value: '30d', label: '30 days', expiresIn: '30d' },
  { value: '90d', label: '90 days', expiresIn: '90d' },
  { value: '365d', label: '1 year', expiresIn: '365d' },
  { value: 'custom', label: 'Custom date…' },
];

/** A date input's `YYYY-MM-DD` as the end of that day, local time, in RFC 3339. */
export function endOfDayRfc3339(date: string): string | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date);
  if (!m) return null;
  const d = new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]), 23, 59, 59);
  if (Number.isNaN(d.getTime())) return null;
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** An RFC 3339 timestamp as a date input's `YYYY-MM-DD` in local time. */
export function toDateInput(v: string | null | undefined): string {
  if (!v) return '';
  const d = new Date(v);
  if (Number.isNaN(d.getTime())) return '';
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

/** Splits "a, b\nc" into ["a","b","c"], dropping blanks and repeats. */
export function splitList(s: string): string[] {
  return [...new Set(s.split(/[\s,]+/).map((x) => x.trim()).filter(Boolean))];
}

import type { Overrides } from './api/client';

/** The largest value each field holds on the gateway (32-bit counts; the
 * daily budget 64-bit, bounded here by what a JS number carries exactly). */
const U32_MAX = 4_294_967_295;

export const OVERRIDE_FIELDS = [
  { key: 'requests_per_min', label: 'Requests / min', max: U32_MAX },
  { key: 'tokens_per_min', label: 'Tokens / min', max: U32_MAX },
  { key: 'max_concurrent_streams', label: 'Concurrent streams', max: U32_MAX },
  { key: 'daily_token_budget', label: 'Daily tokens', max: Number.MAX_SAFE_INTEGER },
] as const;

export type OverrideKey = (typeof OVERRIDE_FIELDS)[number]['key'];
export type OverridesForm = Record<OverrideKey, string>;

export function overridesForm(o: Overrides | null | undefined): OverridesForm {
  const v = (n: number | null | undefined) => (n === null || n === undefined ? '' : String(n));
  return {
    requests_per_min: v(o?.requests_per_min),
    tokens_per_min: v(o?.tokens_per_min),
    max_concurrent_streams: v(o?.max_concurrent_streams),
    daily_token_budget: v(o?.daily_token_budget),
  };
}

/** Parses the override fields: empty means "use the tier's". */
export function parseOverrides(f: OverridesForm): { overrides: Overrides; errors: Partial<OverridesForm> } {
  const overrides: Overrides = {};
  const errors: Partial<OverridesForm> = {};
  for (const { key, max } of OVERRIDE_FIELDS) {
    const t = f[key].trim().replace(/[,_\s]/g, '');
    if (!t) continue;
    if (!/^\d+$/.test(t) || Number(t) < 1) errors[key] = 'A whole number, at least 1.';
    else if (Number(t) > max) errors[key] = `At most ${max.toLocaleString('en-US')}.`;
    else overrides[key] = Number(t);
  }
  return { overrides, errors };
}

/**
 * The overrides to send when the limit fields change: the API replaces the
 * whole object, so what the form does not show (safety switches, body
 * logging, concurrent requests) is carried over from the key as it is.
 */
export function mergedOverrides(current: Overrides | null | undefined, limits: Overrides): Overrides {
  const kept: Overrides = { ...(current ?? {}) };
  for (const { key } of OVERRIDE_FIELDS) delete kept[key];
  return { ...kept, ...limits };
}

/** "2 domains · 1 IP range · 3 models", or "" when the key is unrestricted. */
export function restrictionSummary(k: Pick<KeyView, 'models' | 'allowed_domains' | 'allowed_ips'>): string {
  const parts: string[] = [];
  const n = (c: number, one: string, many: string) => `${c} ${c === 1 ? one : many}`;
  if (k.models.length) parts.push(k.models.length === 1 ? k.models[0] : n(k.models.length, 'model', 'models'));
  if (k.allowed_domains.length)
    parts.push(k.allowed_domains.length === 1 ? k.allowed_domains[0] : n(k.allowed_domains.length, 'domain', 'domains'));
  if (k.allowed_ips.length) parts.push(n(k.allowed_ips.length, 'IP rule', 'IP rules'));
  return parts.join(' · ');
}

export const GRACE_CHOICES = [
  { value: '0s', label: 'Stop the old key now' },
  { value: '1h', label: '1 hour' },
  { value: '24h', label: '24 hours' },
  { value: '7d', label: '7 days' },
] as const;
