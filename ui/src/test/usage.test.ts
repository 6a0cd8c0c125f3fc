import { describe, expect, it } from 'vitest';
import { dayBuckets, dispositionFilename, rangeSince, splitSeries, summarize, type UsageRow } from '../lib/usage';

const now = new Date('2026-11-29T15:30:00Z');
const D = (s: string) => Date.parse(s) / 1000;

function row(bucket: string, key: string | null, model: string | null, requests: number, extra: Partial<UsageRow> = {}): UsageRow {
  return {
    bucket,
    key_id: key,
    model,
    requests,
    errors: 0,
    prompt_tokens: requests * 10,
    completion_tokens: requests * 2,
    latency_avg_ms: 100,
    ...extra,
  };
}

describe('usage', () => {
  it('lists UTC days, today last', () => {
    expect(dayBuckets(3, now)).toEqual([D('2026-11-27T00:00:00Z'), D('2026-11-28T00:00:00Z'), D('2026-11-29T00:00:00Z')]);
    expect(rangeSince(7, now)).toBe('2026-11-23T00:00:00Z');
  });

  it('folds rows per day, key and model', () => {
    const b = dayBuckets(3, now);
    const s = summarize(
      [
        row('2026-11-29T00:00:00Z', 'k1', 'gpt', 4, { errors: 1, latency_avg_ms: 200 }),
        row('2026-11-29T00:00:00Z', 'k2', 'gpt', 1, { unreported_tokens: 300 }),
        row('2026-11-27T00:00:00Z', 'k1', 'llama', 2),
        row('2026-11-29T00:00:00Z', null, null, 3, { latency_avg_ms: null }),
        row('2026-10-01T00:00:00Z', 'k9', 'old', 5),
      ],
      b,
    );
    expect(s.requests).toEqual([2, 0, 8]);
    expect(s.errors).toEqual([0, 0, 1]);
    expect(s.prompt).toEqual([20, 0, 80]);
    expect(s.totals.requests).toBe(15);
    // Charged without a report: kept apart from the reported tokens.
    expect(s.totals.unreported_tokens).toBe(300);
    expect(s.totals.prompt_tokens).toBe(150);
    expect(s.byKey.map((k) => [k.name, k.requests])).toEqual([
      ['k1', 6],
      ['k9', 5],
      ['', 3],
      ['k2', 1],
    ]);
    expect(s.byKey[0].daily).toEqual([2, 0, 4]);
    // (4×200 + 2×100) / 6
    expect(s.byKey[0].latency_avg_ms).toBeCloseTo(166.67, 1);
    expect(s.byKey[2].latency_avg_ms).toBeNull();
    expect(s.byModel[0].name).toBe('gpt');
  });

  it('splits the top entries and sums the rest as Other', () => {
    const e = (name: string, daily: number[]) => ({
      name,
      requests: daily.reduce((a, b) => a + b, 0),
      errors: 0,
      prompt_tokens: 0,
      completion_tokens: 0,
      unreported_tokens: 0,
      latency_avg_ms: null,
      daily,
    });
    const parts = splitSeries([e('a', [5, 5]), e('b', [1, 2]), e('c', [1, 0])], 1);
    expect(parts).toEqual([
      { name: 'a', other: false, daily: [5, 5] },
      { name: 'Other', other: true, daily: [2, 2] },
    ]);
  });

  it('reads file names from Content-Disposition', () => {
    expect(dispositionFilename('attachment; filename="usage.csv"', 'x')).toBe('usage.csv');
    expect(dispositionFilename("attachment; filename*=UTF-8''us%20age.csv", 'x')).toBe('us age.csv');
    expect(dispositionFilename(null, 'fallback.csv')).toBe('fallback.csv');
  });
});

import { cryptoProgress, storageLabel, versionList } from '../lib/crypto';
describe('master key status', () => {
  it('lists versions newest first with their records, and the progress', () => {
    const s = { current_version: 2, versions: [1, 2], records_by_version: { '1': 30, '2': 70 }, reencrypt_pending: 30 };
    expect(versionList(s)).toEqual([
      { version: 2, created_at: null, records: 70 },
      { version: 1, created_at: null, records: 30 },
    ]);
    expect(cryptoProgress(s)).toEqual({ done: 70, total: 100, percent: 70 });
    expect(versionList({ current_version: 3, versions: [{ version: 3, created_at: 'x' }], records_by_version: {}, reencrypt_pending: 0 })).toEqual([
      { version: 3, created_at: 'x', records: 0 },
    ]);
    expect(cryptoProgress({ current_version: 1, versions: [], records_by_version: {}, reencrypt_pending: 0 }).percent).toBe(100);
  });
  it('names where the key is kept', () => {
    expect(storageLabel('os_secret_store')).toBe('OS secret store');
    expect(storageLabel('hsm')).toBe('hsm');
  });
});
