import { describe, expect, it } from 'vitest';
import {
  compactNumber,
  durationDays,
  formatBytes,
  formatDuration,
  formatLatency,
  gatewayBaseUrl,
  parseDuration,
  plural,
  relativeTime,
  toDate,
} from '../lib/format';

describe('toDate', () => {
  it('reads RFC 3339 strings and Unix seconds', () => {
    expect(toDate('2026-11-29T01:20:11Z')?.toISOString()).toBe('2026-11-29T01:20:11.000Z');
    expect(toDate(1795915211)?.toISOString()).toBe('2026-11-29T01:20:11.000Z');
  });
  it('gives null for nothing or garbage', () => {
    expect(toDate(null)).toBeNull();
    expect(toDate('')).toBeNull();
    expect(toDate('yesterday')).toBeNull();
  });
});

describe('relativeTime', () => {
  const now = new Date('2026-11-29T12:00:00Z');
  it('says just now for the last seconds', () => {
    expect(relativeTime('2026-11-29T11:59:50Z', now)).toBe('just now');
  });
  it('counts minutes, hours and days both ways', () => {
    expect(relativeTime('2026-11-29T11:55:00Z', now)).toBe('5 minutes ago');
    expect(relativeTime('2026-11-29T09:00:00Z', now)).toBe('3 hours ago');
    expect(relativeTime('2026-11-27T12:00:00Z', now)).toBe('2 days ago');
    expect(relativeTime('2026-12-02T12:00:00Z', now)).toBe('in 3 days');
    expect(relativeTime('2026-11-28T12:00:00Z', now)).toBe('yesterday');
  });
  it('falls back to a date past a month', () => {
    expect(relativeTime('2026-01-04T12:00:00Z', now)).toBe('Jan 4, 2026');
  });
  it('shows a dash for no time', () => {
    expect(relativeTime(null, now)).toBe('—');
  });
});

describe('formatBytes', () => {
  it('uses binary units and trims zeros', () => {
    expect(formatBytes(8388608)).toBe('8 MiB');
    expect(formatBytes(67108864)).toBe('64 MiB');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(1)).toBe('1 byte');
    expect(formatBytes(512)).toBe('512 bytes');
    expect(formatBytes(undefined)).toBe('—');
  });
});

describe('durations', () => {
  it('parses the forms the gateway prints', () => {
    expect(parseDuration('5s')).toBe(5);
    expect(parseDuration('2m')).toBe(120);
    expect(parseDuration('1h 30m')).toBe(5400);
    expect(parseDuration('1m30s')).toBe(90);
    expect(parseDuration('250ms')).toBe(0.25);
    expect(parseDuration('7d')).toBe(604800);
  });
  it('rejects what is not a duration', () => {
    expect(parseDuration('')).toBeNull();
    expect(parseDuration('banana')).toBeNull();
    expect(parseDuration('5')).toBeNull();
    expect(parseDuration('5 parsecs')).toBeNull();
    expect(parseDuration('5s and more')).toBeNull();
  });
  it('formats seconds compactly', () => {
    expect(formatDuration(90)).toBe('1m 30s');
    expect(formatDuration(600)).toBe('10m');
    expect(formatDuration(0.25)).toBe('250ms');
    expect(formatDuration(90061)).toBe('1d 1h 1m 1s');
  });
});

describe('numbers', () => {
  it('pluralises', () => {
    expect(plural(1, 'key')).toBe('1 key');
    expect(plural(3, 'key')).toBe('3 keys');
    expect(plural(2, 'entry', 'entries')).toBe('2 entries');
    expect(plural(1200, 'key')).toBe('1,200 keys');
  });
  it('compacts large numbers', () => {
    expect(compactNumber(100000)).toBe('100K');
    expect(compactNumber(1500000)).toBe('1.5M');
    expect(compactNumber(950)).toBe('950');
    expect(compactNumber(null)).toBe('—');
  });
  it('formats latency', () => {
    expect(formatLatency(12)).toBe('12 ms');
    expect(formatLatency(1234)).toBe('1.23 s');
  });
});

describe('gatewayBaseUrl', () => {
  it('builds the /v1 base URL from the listen address', () => {
    expect(gatewayBaseUrl('127.0.0.1:8787')).toBe('http://127.0.0.1:8787/v1');
    expect(gatewayBaseUrl('127.0.0.1:8443', 'localhost', true)).toBe('https://127.0.0.1:8443/v1');
    expect(gatewayBaseUrl('[::1]:8787')).toBe('http://[::1]:8787/v1');
  });
  it('replaces a wildcard address with the host of the page', () => {
    expect(gatewayBaseUrl('0.0.0.0:8787', 'gw.local')).toBe('http://gw.local:8787/v1');
    expect(gatewayBaseUrl('[::]:8787', 'gw.local')).toBe('http://gw.local:8787/v1');
  });
  it('gives null without an address', () => {
    expect(gatewayBaseUrl(null)).toBeNull();
    expect(gatewayBaseUrl('nonsense')).toBeNull();
  });
});

describe('durationDays', () => {
  it('reads the durations the gateway writes back', () => {
    expect(durationDays('30days')).toBe(30);
    expect(durationDays('2months 29days 2h 52m 48s')).toBe(90);
    expect(durationDays('1year')).toBe(365);
    expect(durationDays('soon')).toBeNull();
  });
});
