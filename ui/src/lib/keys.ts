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
    (a, b) => rank[a.status] - rank[b.status] || b.created_at.localeCompare(a.created_at) || a.id.localeCompare(b.id),
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
