// The Settings page's editable values and their conversion to the API's.

import type { Settings } from './api/client';
import { parseDuration } from './format';

const MIB = 1024 * 1024;

export interface LimitsForm {
  max_body_mib: string;
  max_response_mib: string;
  default_max_tokens: string;
  usage_drain_timeout: string;
}

export interface TimeoutsForm {
  connect_timeout: string;
  first_byte_timeout: string;
  total_timeout: string;
  stream_idle_timeout: string;
  pool_max_idle_per_host: string;
}

export function mibString(bytes: number | undefined): string {
  if (bytes === undefined) return '';
  return String(Math.round((bytes / MIB) * 10000) / 10000);
}

export function limitsForm(s: Settings): LimitsForm {
  return {
    max_body_mib: mibString(s.limits.max_body_bytes),
    max_response_mib: mibString(s.limits.max_response_bytes),
    default_max_tokens: s.limits.default_max_tokens === undefined ? '' : String(s.limits.default_max_tokens),
    usage_drain_timeout: s.limits.usage_drain_timeout ?? '',
  };
}

export function timeoutsForm(s: Settings): TimeoutsForm {
  const t = s.upstream_defaults;
  return {
    connect_timeout: t.connect_timeout ?? '',
    first_byte_timeout: t.first_byte_timeout ?? '',
    total_timeout: t.total_timeout ?? '',
    stream_idle_timeout: t.stream_idle_timeout ?? '',
    pool_max_idle_per_host: String(t.pool_max_idle_per_host ?? ''),
  };
}

/** MiB as typed → bytes, or an error message. */
export function parseMib(s: string): number | string {
  const t = s.trim();
  if (!t) return 'Enter a size in MiB.';
  const n = Number(t);
  if (!Number.isFinite(n) || n <= 0) return 'Enter a positive number of MiB.';
  const bytes = Math.round(n * MIB);
  if (bytes > Number.MAX_SAFE_INTEGER) return 'That is too large.';
  return bytes;
}

export function checkDuration(s: string): string | null {
  const secs = parseDuration(s);
  if (secs === null) return 'Use a number and a unit, e.g. 30s, 2m or 1h.';
  if (secs <= 0) return 'Must be longer than zero.';
  return null;
}

export function parseCount(s: string): number | string {
  const t = s.trim();
  if (!/^\d+$/.test(t)) return 'Enter a whole number.';
  return Number(t);
}

/** The merge patch for the limits form, or errors by field. */
export function limitsPatch(
  f: LimitsForm,
  current: Settings,
): { patch: Partial<Settings['limits']>; errors: Partial<Record<keyof LimitsForm, string>> } {
  const errors: Partial<Record<keyof LimitsForm, string>> = {};
  const patch: Partial<Settings['limits']> = {};
  const body = parseMib(f.max_body_mib);
  const resp = parseMib(f.max_response_mib);
  if (typeof body === 'string') errors.max_body_mib = body;
  else if (mibString(current.limits.max_body_bytes) !== f.max_body_mib.trim()) patch.max_body_bytes = body;
  if (typeof resp === 'string') errors.max_response_mib = resp;
  else if (mibString(current.limits.max_response_bytes) !== f.max_response_mib.trim()) patch.max_response_bytes = resp;
  const before = limitsForm(current);
  const tokens = parseCount(f.default_max_tokens);
  if (typeof tokens === 'string' || tokens < 1) errors.default_max_tokens = 'A whole number, at least 1.';
  else if (String(tokens) !== before.default_max_tokens) patch.default_max_tokens = tokens;
  const drain = f.usage_drain_timeout.trim();
  const drainErr = checkDuration(drain);
  if (drainErr) errors.usage_drain_timeout = drainErr;
  else if (drain !== before.usage_drain_timeout) patch.usage_drain_timeout = drain;
  return { patch, errors };
}

/** The merge patch for the timeouts form, or errors by field. */
export function timeoutsPatch(
  f: TimeoutsForm,
  current: Settings,
): { patch: Partial<Settings['upstream_defaults']>; errors: Partial<Record<keyof TimeoutsForm, string>> } {
  const errors: Partial<Record<keyof TimeoutsForm, string>> = {};
  const patch: Record<string, string | number> = {};
  const before = timeoutsForm(current);
  for (const k of ['connect_timeout', 'first_byte_timeout', 'total_timeout', 'stream_idle_timeout'] as const) {
    const v = f[k].trim();
    const err = checkDuration(v);
    if (err) errors[k] = err;
    else if (v !== before[k]) patch[k] = v;
  }
  const pool = parseCount(f.pool_max_idle_per_host);
  if (typeof pool === 'string') errors.pool_max_idle_per_host = pool;
  else if (String(pool) !== before.pool_max_idle_per_host) patch.pool_max_idle_per_host = pool;
  return { patch, errors };
}

/** Whether a form differs from the values it was filled with. */
export function formChanged<T extends object>(form: T, original: T): boolean {
  return (Object.keys(original) as (keyof T)[]).some((k) => String(form[k]).trim() !== String(original[k]).trim());
}
