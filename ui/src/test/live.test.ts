import { describe, expect, it } from 'vitest';
import { SseParser, backoffMs } from '../lib/sse';
import { RecentBuffer, TickHistory, TopCounter, isFailure, safetyOutcome, statusTone, totalTokens } from '../lib/live';
import { LiveStore } from '../lib/stores/live.svelte';
import {
  CursorStack,
  EMPTY_LOG_FILTER,
  filterFromSearch,
  filterToSearch,
  isLogFilterSet,
  logQuery,
  prettyBody,
} from '../lib/logs';

describe('SSE parser', () => {
  it('parses events split across chunks, CRLF, comments and multi-line data', () => {
    const p = new SseParser();
    expect(p.push('event: tick\ndata: {"a"')).toEqual([]);
    expect(p.push(':1}\n\n: keep-alive\n\nevent: request\r\ndata: x\r\ndata: y\r\n\r\n')).toEqual([
      { event: 'tick', data: '{"a":1}', id: undefined },
      { event: 'request', data: 'x\ny', id: undefined },
    ]);
    expect(p.push('data: plain\n\n')).toEqual([{ event: 'message', data: 'plain', id: undefined }]);
  });

  it('backs off exponentially up to 30 s', () => {
    expect(backoffMs(0, () => 0.5)).toBe(1000);
    expect(backoffMs(3, () => 0.5)).toBe(8000);
    expect(backoffMs(20, () => 0.5)).toBe(30000);
    expect(backoffMs(0, () => 0)).toBe(750);
  });
});

describe('tick history', () => {
  it('returns one slot per second with gaps as null and a rolling tokens/min', () => {
    const h = new TickHistory(120);
    for (let at = 1000; at < 1010; at++) h.push({ at, requests: 2, errors: at === 1005 ? 1 : 0, tokens: 10, p50_ms: 5, p95_ms: 9 });
    // 1010 missing, 1011 present.
    h.push({ at: 1011, requests: 4, errors: 0, tokens: 10, p50_ms: null, p95_ms: null });
    const s = h.series(1011, 5);
    expect(s.x).toEqual([1007, 1008, 1009, 1010, 1011]);
    expect(s.requests).toEqual([2, 2, 2, null, 4]);
    expect(s.p50).toEqual([5, 5, 5, null, null]);
    expect(s.tokensPerMin[0]).toBe(600);
    expect(s.tokensPerMin[3]).toBeNull();
    expect(h.totals(1011, 5)).toEqual({ requests: 10, errors: 0, tokens: 40, seconds: 4 });
    expect(h.totals(1011, 60).errors).toBe(1);
    expect(h.latest?.at).toBe(1011);
  });

  it('overwrites slots older than its capacity', () => {
    const h = new TickHistory(10);
    h.push({ at: 5, requests: 1, errors: 0, tokens: 0, p50_ms: null, p95_ms: null });
    h.push({ at: 15, requests: 7, errors: 0, tokens: 0, p50_ms: null, p95_ms: null });
    expect(h.series(15, 11).requests).toEqual([null, null, null, null, null, null, null, null, null, 7]);
  });
});

describe('top counters and recent buffer', () => {
  it('ranks names by requests within the window', () => {
    const t = new TopCounter();
    for (let i = 0; i < 5; i++) t.add(100_000, 'a', false, 10);
    for (let i = 0; i < 3; i++) t.add(200_000, 'b', i === 0, 1);
    t.add(10_000, 'old', false, 0);
    expect(t.top(200, 150).map((e) => [e.name, e.requests, e.errors, e.tokens])).toEqual([
      ['a', 5, 0, 50],
      ['b', 3, 1, 3],
    ]);
    t.prune(10_000);
    expect(t.top(200, 200)).toEqual([]);
  });

  it('keeps the newest items, newest first', () => {
    const b = new RecentBuffer<number>(3);
    for (let i = 0; i < 20; i++) b.push(i);
    expect(b.snapshot()).toEqual([19, 18, 17]);
    expect(b.size).toBe(3);
  });
});

describe('live store', () => {
  it('aggregates request events and only publishes on flush', () => {
    const s = new LiveStore();
    for (let i = 0; i < 1000; i++) {
      s.handle(
        'request',
        JSON.stringify({ id: `r${i}`, at: 1_000_000 + i, key_id: i % 2 ? 'k1' : 'k2', model: 'm', status: i % 10 ? 200 : 500, latency_ms: 5, prompt_tokens: 1, completion_tokens: 1, stream: false, safety: { checks: [] } }),
      );
    }
    expect(s.recent).toEqual([]);
    // A replayed (old) tick waits for the timer's flush; a current one flushes at once.
    s.handle('tick', JSON.stringify({ at: 1001, requests: 1000, errors: 100, tokens: 2000, p50_ms: 5, p95_ms: 7 }));
    expect(s.recent).toEqual([]);
    s.handle('tick', JSON.stringify({ at: Math.floor(Date.now() / 1000), requests: 0, errors: 0, tokens: 0, p50_ms: null, p95_ms: null }));
    expect(s.recent.length).toBe(15);
    expect(s.recent[0].id).toBe('r999');
    expect(s.seen).toBe(1000);
    // The request times (1970) are outside the window now; the window follows the newest tick.
    expect(s.topModels).toEqual([]);
    const t = new LiveStore();
    t.handle('request', JSON.stringify({ id: 'x', at: Date.now(), key_id: null, model: 'm', status: 500, latency_ms: 1, prompt_tokens: null, completion_tokens: null, stream: false, safety: {} }));
    t.flush();
    expect(t.topModels).toEqual([{ name: 'm', requests: 1, errors: 1, tokens: 0 }]);
    expect(t.topKeys.map((k) => k.name)).toEqual(['']);
    s.handle('request', 'not json');
    s.handle('tick', 'nope');
  });
});

describe('formatting of records', () => {
  it('names the safety outcome honestly', () => {
    expect(safetyOutcome({ checks: [] }).label).toBe('Not checked');
    expect(safetyOutcome(null).label).toBe('Not checked');
    expect(safetyOutcome({ checks: [{ check: 'injection', action: 'block', fired: ['ignore_previous'] }] })).toEqual({
      label: 'Blocked',
      tone: 'danger',
      detail: 'injection: ignore_previous',
    });
    expect(safetyOutcome({ checks: [{ check: 'moderation', action: 'flag', fired: ['violence'] }] }).tone).toBe('warning');
    expect(safetyOutcome({ checks: [{ check: 'moderation', action: 'log', fired: ['spam'] }] }).label).toBe('Logged');
    expect(safetyOutcome({ checks: [{ check: 'moderation', status: 'ran', action: 'pass' }] })).toEqual({
      label: 'Passed',
      tone: 'success',
      detail: 'Checked: moderation',
    });
    expect(safetyOutcome({ checks: [{ check: 'moderation', status: 'skipped', action: 'none', reason: 'too long' }] })).toEqual({
      label: 'Skipped',
      tone: 'neutral',
      detail: 'moderation: too long',
    });
  });

  it('tones statuses and sums tokens', () => {
    expect(statusTone(200)).toBe('success');
    expect(statusTone(429)).toBe('warning');
    expect(statusTone(502)).toBe('danger');
    expect(totalTokens({ prompt_tokens: 3, completion_tokens: null })).toBe(3);
    expect(totalTokens({})).toBeNull();
  });

  it('counts failures as the gateway does', () => {
    expect(isFailure({ status: 502, error_code: 'upstream_error' })).toBe(true);
    expect(isFailure({ status: 200, error_code: 'upstream_error' })).toBe(true);
    expect(isFailure({ status: 200, error_code: null })).toBe(false);
  });
});

describe('log filters', () => {
  const now = new Date('2026-11-29T12:00:00Z');

  it('maps a filter to the API query', () => {
    expect(logQuery(EMPTY_LOG_FILTER, now)).toEqual({ since: '2026-11-28T12:00:00Z' });
    expect(logQuery({ ...EMPTY_LOG_FILTER, range: 'all', status: '429', model: ' gpt ', key_id: 'key_1' }, now)).toEqual({
      status: 429,
      model: 'gpt',
      key_id: 'key_1',
    });
    expect(logQuery({ ...EMPTY_LOG_FILTER, range: 'custom', from: '2026-11-29T10:00', to: '2026-11-29T09:00' }, now)).toEqual({
      error: 'The range must start before it ends.',
    });
    expect(logQuery({ ...EMPTY_LOG_FILTER, safety: 'block' }, now, true)).toMatchObject({ safety_action: 'block' });
    expect(logQuery({ ...EMPTY_LOG_FILTER, safety: 'block' }, now, false)).not.toHaveProperty('safety_action');
  });

  it('round-trips through the URL, leaving defaults out', () => {
    expect(filterToSearch(EMPTY_LOG_FILTER)).toBe('');
    const f = { ...EMPTY_LOG_FILTER, status: '401', key_id: 'key_a' };
    expect(filterToSearch(f)).toBe('?key_id=key_a&status=401');
    expect(filterFromSearch('?key_id=key_a&status=401&range=bogus')).toEqual(f);
    expect(isLogFilterSet(EMPTY_LOG_FILTER)).toBe(false);
    expect(isLogFilterSet(f)).toBe(true);
  });

  it('pages with a cursor stack and pretty-prints bodies', () => {
    const c = new CursorStack();
    expect(c.page).toBe(1);
    c.older('a');
    c.older('b');
    expect([c.page, c.current]).toEqual([3, 'b']);
    expect(c.newer()).toBe('a');
    c.reset();
    expect(c.current).toBeNull();
    expect(prettyBody('{"a":1}')).toEqual({ text: '{\n  "a": 1\n}', json: true });
    expect(prettyBody('not json')).toEqual({ text: 'not json', json: false });
  });
});
