import { describe, expect, it } from 'vitest';
import type { Settings, Tier } from '../lib/api/client';
import {
  checkDuration,
  formChanged,
  limitsForm,
  limitsPatch,
  parseMib,
  timeoutsForm,
  timeoutsPatch,
} from '../lib/settingsForm';
import { parseTierForm, tierForm, tierPatch } from '../lib/tiers';
import { mergePatch } from '../lib/stores/gateway.svelte';

// Only the sections these forms read.
const settings = {
  echo_model: true,
  limits: { max_body_bytes: 8388608, max_response_bytes: 67108864, default_max_tokens: 1024, usage_drain_timeout: '30s' },
  access: { allowed_ips: [], trusted_proxies: [], auth_failures_per_min: 30 },
  logs: {
    store_bodies: true,
    redact: { emails: false, phones: false, cards: false, api_keys: false },
    retention: { request_logs: '30days', usage: '2months 29days 2h 52m 48s', audit: 'forever' },
  },
  upstream_defaults: {
    connect_timeout: '5s',
    first_byte_timeout: '2m',
    total_timeout: '10m',
    stream_idle_timeout: '2m',
    pool_max_idle_per_host: 256,
  },
} as unknown as Settings;

describe('settings forms', () => {
  it('shows limits in MiB and patches only what changed', () => {
    const f = limitsForm(settings);
    expect(f).toEqual({ max_body_mib: '8', max_response_mib: '64', default_max_tokens: '1024', usage_drain_timeout: '30s' });
    expect(limitsPatch(f, settings)).toEqual({ patch: {}, errors: {} });
    expect(limitsPatch({ ...f, max_body_mib: '16' }, settings).patch).toEqual({ max_body_bytes: 16777216 });
    expect(limitsPatch({ ...f, max_body_mib: '0.5' }, settings).patch).toEqual({ max_body_bytes: 524288 });
  });
  it('refuses sizes that are not positive numbers', () => {
    expect(parseMib('')).toMatch(/Enter/);
    expect(parseMib('-1')).toMatch(/positive/);
    expect(parseMib('abc')).toMatch(/positive/);
    const bad = limitsPatch({ ...limitsForm(settings), max_body_mib: 'x', default_max_tokens: '0', usage_drain_timeout: 'later' }, settings);
    expect(Object.keys(bad.errors).sort()).toEqual(['default_max_tokens', 'max_body_mib', 'usage_drain_timeout']);
    expect(limitsPatch({ ...limitsForm(settings), default_max_tokens: '4096' }, settings).patch).toEqual({ default_max_tokens: 4096 });
  });
  it('validates and patches timeouts', () => {
    const f = timeoutsForm(settings);
    expect(timeoutsPatch(f, settings).patch).toEqual({});
    const r = timeoutsPatch({ ...f, stream_idle_timeout: '90s', pool_max_idle_per_host: '64' }, settings);
    expect(r.patch).toEqual({ stream_idle_timeout: '90s', pool_max_idle_per_host: 64 });
    const bad = timeoutsPatch({ ...f, total_timeout: 'soon', pool_max_idle_per_host: '-3' }, settings);
    expect(Object.keys(bad.errors).sort()).toEqual(['pool_max_idle_per_host', 'total_timeout']);
    expect(checkDuration('0s')).toMatch(/longer than zero/);
    expect(checkDuration('30s')).toBeNull();
  });
  it('knows when a form was edited', () => {
    const f = timeoutsForm(settings);
    expect(formChanged(f, timeoutsForm(settings))).toBe(false);
    expect(formChanged({ ...f, connect_timeout: ' 5s ' }, f)).toBe(false);
    expect(formChanged({ ...f, connect_timeout: 'banana' }, f)).toBe(true);
  });
});

describe('mergePatch', () => {
  it('keeps only changed leaves, recursing into objects', () => {
    const after = structuredClone(settings);
    after.limits.max_body_bytes = 1;
    after.access.allowed_ips = ['10.0.0.0/8'];
    expect(mergePatch(settings, after)).toEqual({
      limits: { max_body_bytes: 1 },
      access: { allowed_ips: ['10.0.0.0/8'] },
    });
    expect(mergePatch(settings, structuredClone(settings))).toEqual({});
  });
});

describe('tier form', () => {
  const tier: Tier = { name: 'pro', requests_per_min: 100, tokens_per_min: 1000000, max_concurrent_streams: null };
  it('round-trips a tier', () => {
    expect(parseTierForm(tierForm(tier)).tier).toEqual({ ...tier, daily_token_budget: null });
  });
  it('accepts thousands separators and empty optional limits', () => {
    const r = parseTierForm({ ...tierForm(null), name: 'team', requests_per_min: '1,000', tokens_per_min: '2_000_000' });
    expect(r.errors).toEqual({});
    expect(r.tier).toMatchObject({ requests_per_min: 1000, tokens_per_min: 2000000, max_concurrent_streams: null });
  });
  it('reports each bad field', () => {
    const r = parseTierForm({
      name: 'Pro Tier',
      requests_per_min: '0',
      tokens_per_min: 'lots',
      max_concurrent_streams: '0',
      daily_token_budget: '-5',
    });
    expect(r.tier).toBeNull();
    expect(Object.keys(r.errors).sort()).toEqual([
      'daily_token_budget',
      'max_concurrent_streams',
      'name',
      'requests_per_min',
      'tokens_per_min',
    ]);
  });
  it('patches only changed limits, null clearing one', () => {
    const next = { ...tier, requests_per_min: 200, daily_token_budget: 5 };
    expect(tierPatch(tier, next)).toEqual({ requests_per_min: 200, daily_token_budget: 5 });
    expect(tierPatch({ ...tier, max_concurrent_streams: 4 }, tier)).toEqual({ max_concurrent_streams: null });
  });
});
