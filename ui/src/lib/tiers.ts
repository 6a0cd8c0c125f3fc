// Helpers of the Tiers page: the form's text fields to and from API numbers.

import type { Tier, UpdateTier } from './api/client';

export interface TierForm {
  name: string;
  requests_per_min: string;
  tokens_per_min: string;
  max_concurrent_streams: string;
  daily_token_budget: string;
}

export type TierErrors = Partial<Record<keyof TierForm, string>>;

export function tierForm(t: Tier | null): TierForm {
  return {
    name: t?.name ?? '',
    requests_per_min: t ? String(t.requests_per_min) : '60',
    tokens_per_min: t ? String(t.tokens_per_min) : '100000',
    max_concurrent_streams: t?.max_concurrent_streams != null ? String(t.max_concurrent_streams) : '',
    daily_token_budget: t?.daily_token_budget != null ? String(t.daily_token_budget) : '',
  };
}

/** "1,000,000", "1_000_000" and "1000000" all read as 1000000. */
function parseWhole(s: string): number | null {
  const t = s.trim().replace(/[,_\s]/g, '');
  if (!/^\d+$/.test(t)) return null;
  const n = Number(t);
  return Number.isSafeInteger(n) ? n : null;
}

/** Validates the form; returns the tier it describes, or errors by field. */
export function parseTierForm(f: TierForm): { tier: Tier | null; errors: TierErrors } {
  const errors: TierErrors = {};
  const name = f.name.trim();
  if (!/^[a-z0-9_-]{1,32}$/.test(name)) errors.name = 'Use 1–32 lowercase letters, digits, - or _.';
  const rpm = parseWhole(f.requests_per_min);
  if (rpm === null || rpm < 1) errors.requests_per_min = 'A whole number, at least 1.';
  const tpm = parseWhole(f.tokens_per_min);
  if (tpm === null || tpm < 1) errors.tokens_per_min = 'A whole number, at least 1.';
  let streams: number | null = null;
  if (f.max_concurrent_streams.trim()) {
    streams = parseWhole(f.max_concurrent_streams);
    if (streams === null || streams < 1) errors.max_concurrent_streams = 'A whole number, at least 1 — or leave empty.';
  }
  let budget: number | null = null;
  if (f.daily_token_budget.trim()) {
    budget = parseWhole(f.daily_token_budget);
    if (budget === null || budget < 1) errors.daily_token_budget = 'A whole number, at least 1 — or leave empty.';
  }
  if (Object.keys(errors).length) return { tier: null, errors };
  return {
    tier: {
      name,
      requests_per_min: rpm!,
      tokens_per_min: tpm!,
      max_concurrent_streams: streams,
      daily_token_budget: budget,
    },
    errors,
  };
}

/** The fields of `next` that differ from `prev`, as an update. */
export function tierPatch(prev: Tier, next: Tier): UpdateTier {
  const patch: UpdateTier = {};
  if (next.requests_per_min !== prev.requests_per_min) patch.requests_per_min = next.requests_per_min;
  if (next.tokens_per_min !== prev.tokens_per_min) patch.tokens_per_min = next.tokens_per_min;
  if ((next.max_concurrent_streams ?? null) !== (prev.max_concurrent_streams ?? null))
    patch.max_concurrent_streams = next.max_concurrent_streams ?? null;
  if ((next.daily_token_budget ?? null) !== (prev.daily_token_budget ?? null))
    patch.daily_token_budget = next.daily_token_budget ?? null;
  return patch;
}
