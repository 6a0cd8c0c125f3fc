import { describe, expect, it } from 'vitest';
import type { KeyView } from '../lib/api/client';
import {
  EMPTY_FILTER,
  endOfDayRfc3339,
  filterKeys,
  isFiltered,
  overridesForm,
  mergedOverrides,
  parseOverrides,
  restrictionSummary,
  sortKeys,
  splitList,
  tiersInUse,
  toDateInput,
} from '../lib/keys';

function key(p: Partial<KeyView>): KeyView {
  return {
    id: 'key_x',
    name: 'x',
    prefix: 'ask_x',
    environment: 'dev',
    tier: 'free',
    models: [],
    allowed_domains: [],
    allowed_ips: [],
    overrides: {},
    status: 'active',
    created_at: '2026-11-01T00:00:00Z',
    ...p,
  };
}

const keys = [
  key({ id: 'key_1', name: 'Checkout', prefix: 'ask_AAA', environment: 'prod', tier: 'startup' }),
  key({ id: 'key_2', name: 'batch jobs', prefix: 'ask_BBB', status: 'revoked', created_at: '2026-11-03T00:00:00Z' }),
  key({ id: 'key_3', name: 'Staging web', prefix: 'ask_CCC', environment: 'staging', created_at: '2026-11-02T00:00:00Z' }),
];

describe('filterKeys', () => {
  it('returns everything without a filter', () => {
    expect(filterKeys(keys, EMPTY_FILTER)).toHaveLength(3);
    expect(isFiltered(EMPTY_FILTER)).toBe(false);
  });
  it('searches name, prefix, id and tier, ignoring case', () => {
    const q = (query: string) => filterKeys(keys, { ...EMPTY_FILTER, query }).map((k) => k.id);
    expect(q('checkout')).toEqual(['key_1']);
    expect(q('ask_bbb')).toEqual(['key_2']);
    expect(q('key_3')).toEqual(['key_3']);
    expect(q('STARTUP')).toEqual(['key_1']);
    expect(q('  web ')).toEqual(['key_3']);
  });
  it('combines tier, environment and status', () => {
    expect(filterKeys(keys, { ...EMPTY_FILTER, tier: 'free' }).map((k) => k.id)).toEqual(['key_2', 'key_3']);
    expect(filterKeys(keys, { ...EMPTY_FILTER, tier: 'free', status: 'active' }).map((k) => k.id)).toEqual(['key_3']);
    expect(filterKeys(keys, { ...EMPTY_FILTER, environment: 'prod' }).map((k) => k.id)).toEqual(['key_1']);
    expect(isFiltered({ ...EMPTY_FILTER, status: 'revoked' })).toBe(true);
  });
});

describe('sortKeys', () => {
  it('puts active keys first, newest first, then names in natural order', () => {
    expect(sortKeys(keys).map((k) => k.id)).toEqual(['key_3', 'key_1', 'key_2']);
    const same = ['bulk-10', 'bulk-2', 'bulk-1'].map((name, i) => key({ id: `k${i}`, name }));
    expect(sortKeys(same).map((k) => k.name)).toEqual(['bulk-1', 'bulk-2', 'bulk-10']);
  });
  it('does not change its input', () => {
    const copy = [...keys];
    sortKeys(keys);
    expect(keys).toEqual(copy);
  });
});

describe('helpers', () => {
  it('lists tiers in use with free always there', () => {
    expect(tiersInUse(keys)).toEqual(['free', 'startup']);
    expect(tiersInUse([])).toEqual(['free']);
  });
  it('splits lists on commas and whitespace, without blanks or repeats', () => {
    expect(splitList('a, b\nc,,a  d')).toEqual(['a', 'b', 'c', 'd']);
    expect(splitList('  ')).toEqual([]);
  });
  it('turns a date input into the end of that local day', () => {
    const s = endOfDayRfc3339('2027-01-31')!;
    expect(s).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
    const d = new Date(s);
    expect([d.getFullYear(), d.getMonth(), d.getDate(), d.getHours(), d.getMinutes()]).toEqual([2027, 0, 31, 23, 59]);
    expect(endOfDayRfc3339('31/01/2027')).toBeNull();
    expect(toDateInput(s)).toBe('2027-01-31');
    expect(toDateInput(null)).toBe('');
  });
  it('summarises restrictions', () => {
    expect(restrictionSummary(key({}))).toBe('');
    expect(restrictionSummary(key({ models: ['gpt-x'], allowed_ips: ['10.0.0.0/8'] }))).toBe('gpt-x · 1 IP rule');
    expect(
      restrictionSummary(key({ allowed_domains: ['a.com', '*.b.com'], allowed_ips: ['1.2.3.4', '5.6.7.8'] })),
    ).toBe('2 domains · 2 IP rules');
  });
  it('parses limit overrides, empty meaning the tier value', () => {
    expect(parseOverrides(overridesForm({ requests_per_min: 5 }))).toEqual({
      overrides: { requests_per_min: 5 },
      errors: {},
    });
    const bad = parseOverrides({ ...overridesForm(null), tokens_per_min: '0', daily_token_budget: '1,000' });
    expect(bad.errors.tokens_per_min).toBeTruthy();
    expect(bad.overrides).toEqual({ daily_token_budget: 1000 });
    // Past what the gateway's 32-bit counts hold: said on the field, not a
    // parser error from the server.
    const big = parseOverrides({ ...overridesForm(null), tokens_per_min: '5000000000' });
    expect(big.errors.tokens_per_min).toBe('At most 4,294,967,295.');
    expect(overridesForm({ max_concurrent_streams: null })).toEqual({
      requests_per_min: '',
      tokens_per_min: '',
      max_concurrent_streams: '',
      daily_token_budget: '',
    });
  });
  it('keeps the overrides the form does not show when the limits change', () => {
    const current = { requests_per_min: 5, log_bodies: false, safety: { injection: false } };
    expect(mergedOverrides(current, { tokens_per_min: 900 })).toEqual({
      tokens_per_min: 900,
      log_bodies: false,
      safety: { injection: false },
    });
    expect(mergedOverrides(null, {})).toEqual({});
  });
});
