import { beforeEach, describe, expect, it, vi } from 'vitest';

const fetchMock = vi.hoisted(() => {
  const f = vi.fn();
  globalThis.fetch = f as unknown as typeof fetch;
  return f;
});

import { adminFetch, api, isMissingRoute, onUnauthorized, setAdminAuthProvider } from '../lib/api/client';
import { AdminEventStream, type SseEvent, type StreamState } from '../lib/sse';

beforeEach(() => {
  fetchMock.mockReset();
  setAdminAuthProvider(async () => null);
});

describe('adminFetch', () => {
  it('uses the session cookie in a browser', async () => {
    fetchMock.mockResolvedValueOnce(new Response('{}', { status: 200 }));
    await adminFetch('/admin/usage?format=csv');
    const [url, init] = fetchMock.mock.calls[0] as [string, RequestInit];
    expect(new URL(url).pathname).toBe('/admin/usage');
    expect(init.credentials).toBe('same-origin');
    expect(new Headers(init.headers).has('Authorization')).toBe(false);
  });

  it("uses the desktop app's token and base URL", async () => {
    setAdminAuthProvider(async () => ({ token: 'tok', baseUrl: 'http://127.0.0.1:9999' }));
    fetchMock.mockResolvedValueOnce(new Response('{}', { status: 200 }));
    await adminFetch('/admin/events?history=3600');
    const [url, init] = fetchMock.mock.calls[0] as [string, RequestInit];
    expect(url).toBe('http://127.0.0.1:9999/admin/events?history=3600');
    expect(new Headers(init.headers).get('Authorization')).toBe('Bearer tok');
  });

  it('reports a 401 as an ended session', async () => {
    const seen = vi.fn();
    const off = onUnauthorized(seen);
    fetchMock.mockResolvedValueOnce(new Response('{}', { status: 401 }));
    await adminFetch('/admin/crypto');
    off();
    expect(seen).toHaveBeenCalledOnce();
  });

  it('asks the desktop shell again after a 401 and retries once with a rotated token', async () => {
    const tokens = ['old', 'new'];
    setAdminAuthProvider(async () => ({ token: tokens.shift() ?? 'new' }));
    const seen = vi.fn();
    const off = onUnauthorized(seen);
    fetchMock.mockResolvedValueOnce(new Response('{}', { status: 401 }));
    fetchMock.mockResolvedValueOnce(new Response('{}', { status: 200 }));
    const res = await adminFetch('/admin/crypto');
    off();
    expect(res.status).toBe(200);
    expect(fetchMock).toHaveBeenCalledTimes(2);
    const [, init] = fetchMock.mock.calls[1] as [string, RequestInit];
    expect(new Headers(init.headers).get('Authorization')).toBe('Bearer new');
    expect(seen).not.toHaveBeenCalled();
  });

  it('does not retry when the token did not change', async () => {
    setAdminAuthProvider(async () => ({ token: 'same' }));
    const seen = vi.fn();
    const off = onUnauthorized(seen);
    fetchMock.mockResolvedValue(new Response('{}', { status: 401 }));
    await adminFetch('/admin/crypto');
    off();
    expect(fetchMock).toHaveBeenCalledOnce();
    expect(seen).toHaveBeenCalledOnce();
  });

  it('the typed client retries a refused POST with its body and the new token', async () => {
    const tokens = ['old', 'new'];
    setAdminAuthProvider(async () => ({ token: tokens.shift() ?? 'new', baseUrl: 'http://127.0.0.1:9999' }));
    fetchMock.mockResolvedValueOnce(new Response('{}', { status: 401, headers: { 'content-type': 'application/json' } }));
    fetchMock.mockResolvedValueOnce(new Response('{"decision":"pass"}', { status: 200, headers: { 'content-type': 'application/json' } }));
    const r = await api.POST('/admin/safety/scan', { body: { text: 'hello' } });
    expect(r.response.status).toBe(200);
    const [url, init] = fetchMock.mock.calls[1] as [string, RequestInit];
    expect(url).toBe('http://127.0.0.1:9999/admin/safety/scan');
    expect(new Headers(init.headers).get('Authorization')).toBe('Bearer new');
    expect(new TextDecoder().decode(init.body as ArrayBuffer)).toBe('{"text":"hello"}');
  });

  it('tells a missing route: 404 or the HTML app shell', () => {
    expect(isMissingRoute(new Response('', { status: 404 }))).toBe(true);
    expect(isMissingRoute(new Response('<!doctype html>', { status: 200, headers: { 'content-type': 'text/html' } }))).toBe(true);
    expect(isMissingRoute(new Response('{}', { status: 200, headers: { 'content-type': 'application/json' } }))).toBe(false);
    expect(isMissingRoute(new Response('{}', { status: 500 }))).toBe(false);
  });
});

describe('AdminEventStream', () => {
  it('dispatches events from a streamed body, then reconnects when it ends', async () => {
    const enc = new TextEncoder();
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(enc.encode('event: tick\ndata: {"at":1}\n\nevent: req'));
        c.enqueue(enc.encode('uest\ndata: {"id":"r"}\n\n'));
        c.close();
      },
    });
    fetchMock.mockResolvedValueOnce(new Response(body, { status: 200, headers: { 'content-type': 'text/event-stream' } }));
    fetchMock.mockResolvedValue(new Response('', { status: 404 }));
    vi.useFakeTimers();
    const events: SseEvent[] = [];
    const states: StreamState[] = [];
    const s = new AdminEventStream('/admin/events', { onevent: (e) => events.push(e), onstate: (st) => states.push(st) });
    s.start();
    await vi.waitFor(() => expect(states).toContain('reconnecting'));
    expect(events.map((e) => e.event)).toEqual(['tick', 'request']);
    await vi.runOnlyPendingTimersAsync();
    await vi.waitFor(() => expect(states.at(-1)).toBe('unavailable'));
    s.close();
    vi.useRealTimers();
    expect(states[0]).toBe('connecting');
    expect(states).toContain('open');
  });
});
