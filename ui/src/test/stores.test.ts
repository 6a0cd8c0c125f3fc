import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

// openapi-fetch takes `fetch` when the client is created: replace it first.
const fetchMock = vi.hoisted(() => {
  const f = vi.fn();
  globalThis.fetch = f as unknown as typeof fetch;
  return f;
});

import { ApiError, errorFromBody, messageOf, onUnauthorized, setAdminAuthProvider } from '../lib/api/client';
import { KeysStore } from '../lib/stores/keys.svelte';
import { UpstreamsStore } from '../lib/stores/upstreams.svelte';
import { ToastStore, TOAST_MS } from '../lib/stores/toasts.svelte';
import { session } from '../lib/stores/session.svelte';
import { normalize } from '../lib/stores/router.svelte';

function json(status: number, body: unknown): Response {
  return new Response(body === undefined ? null : JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json' },
  });
}

const view = {
  id: 'key_1',
  name: 'app',
  prefix: 'ask_ABC',
  environment: 'dev',
  tier: 'free',
  models: [],
  allowed_domains: [],
  allowed_ips: [],
  overrides: {},
  status: 'active',
  created_at: '2026-11-29T00:00:00Z',
};

beforeEach(() => {
  fetchMock.mockReset();
  setAdminAuthProvider(async () => null);
});

describe('KeysStore', () => {
  it('loads the list', async () => {
    fetchMock.mockResolvedValueOnce(json(200, { data: [view] }));
    const s = new KeysStore();
    await s.load();
    expect(s.items).toEqual([view]);
    expect(s.active).toBe(1);
    const req = fetchMock.mock.calls[0][0] as Request;
    expect(new URL(req.url).pathname).toBe('/admin/keys');
    expect(req.credentials).toBe('same-origin');
  });

  it('keeps the secret out of the list after creating a key', async () => {
    fetchMock.mockResolvedValueOnce(json(201, { ...view, key: 'ask_ABCsecret' }));
    const s = new KeysStore();
    const created = await s.create({ name: 'app' });
    expect(created.key).toBe('ask_ABCsecret');
    expect(JSON.stringify(s.items)).not.toContain('ask_ABCsecret');
    expect(s.items).toHaveLength(1);
  });

  it('replaces a key in place after revoking it', async () => {
    fetchMock.mockResolvedValueOnce(json(200, { data: [view] }));
    fetchMock.mockResolvedValueOnce(json(200, { ...view, status: 'revoked', revoked_at: '2026-11-29T01:00:00Z' }));
    const s = new KeysStore();
    await s.load();
    await s.revoke('key_1');
    expect(s.items?.map((k) => k.status)).toEqual(['revoked']);
    const req = fetchMock.mock.calls[1][0] as Request;
    expect(req.method).toBe('POST');
    expect(new URL(req.url).pathname).toBe('/admin/keys/key_1/revoke');
  });

  it('rotation adds the successor and updates the old key, without secrets', async () => {
    fetchMock.mockResolvedValueOnce(json(200, { data: [view] }));
    fetchMock.mockResolvedValueOnce(
      json(201, {
        old: { ...view, replaced_by: 'key_2', expires_at: '2026-11-30T00:00:00Z' },
        new: { ...view, id: 'key_2', prefix: 'ask_NEW', key: 'ask_NEWsecret' },
      }),
    );
    const s = new KeysStore();
    await s.load();
    const r = await s.rotate('key_1', '24h');
    expect(r.new.key).toBe('ask_NEWsecret');
    expect(s.items?.map((k) => k.id)).toEqual(['key_1', 'key_2']);
    expect(s.items?.[0].replaced_by).toBe('key_2');
    expect(JSON.stringify(s.items)).not.toContain('secret');
    expect(await (fetchMock.mock.calls[1][0] as Request).json()).toEqual({ grace: '24h' });
  });

  it("surfaces the server's own error message", async () => {
    fetchMock.mockResolvedValueOnce(
      json(400, { error: { message: "'tier' must be 1-32 lowercase letters.", type: 'invalid_request_error', param: 'tier', code: null } }),
    );
    const s = new KeysStore();
    const err = await s.create({ name: 'x', tier: 'Bad' }).catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err.message).toBe("'tier' must be 1-32 lowercase letters.");
    expect(err.param).toBe('tier');
    expect(err.status).toBe(400);
  });

  it('keeps the error when loading fails', async () => {
    fetchMock.mockRejectedValueOnce(new TypeError('fetch failed'));
    const s = new KeysStore();
    await s.load();
    expect(s.items).toBeNull();
    expect(messageOf(s.error)).toMatch(/Cannot reach the gateway/);
  });
});

describe('UpstreamsStore', () => {
  it('collects the models served, sorted and unique', async () => {
    fetchMock.mockResolvedValueOnce(
      json(200, {
        data: [
          { id: 'u1', name: 'a', base_url: 'x', has_api_key: false, models: [], served_models: ['m2', 'm1'], source: 'admin' },
          { id: 'u2', name: 'b', base_url: 'y', has_api_key: true, models: ['m1'], served_models: ['m1'], source: 'config' },
        ],
      }),
    );
    const s = new UpstreamsStore();
    await s.load();
    expect(s.models).toEqual(['m1', 'm2']);
  });

  it('keeps a config-file upstream when deleting is refused', async () => {
    fetchMock.mockResolvedValueOnce(
      json(200, { data: [{ id: 'u1', name: 'cfg', base_url: 'x', has_api_key: false, models: [], served_models: [], source: 'config' }] }),
    );
    fetchMock.mockResolvedValueOnce(
      json(409, { error: { message: 'Upstream "cfg" is declared in the config file; change it there.', type: 'invalid_request_error' } }),
    );
    const s = new UpstreamsStore();
    await s.load();
    await expect(s.remove('u1')).rejects.toThrow(/config file/);
    expect(s.items).toHaveLength(1);
  });
});

describe('admin client', () => {
  it('sends the bearer token from the auth hook', async () => {
    setAdminAuthProvider(async () => ({ token: 'adm_TOKEN' }));
    fetchMock.mockResolvedValueOnce(json(200, { data: [] }));
    await new KeysStore().load();
    const req = fetchMock.mock.calls[0][0] as Request;
    expect(req.headers.get('authorization')).toBe('Bearer adm_TOKEN');
  });

  it('can send calls to another admin origin (desktop app)', async () => {
    setAdminAuthProvider(async () => ({ token: 't', baseUrl: 'http://127.0.0.1:8788' }));
    fetchMock.mockResolvedValueOnce(json(200, { data: [] }));
    await new KeysStore().load();
    expect((fetchMock.mock.calls[0][0] as Request).url).toBe('http://127.0.0.1:8788/admin/keys');
  });

  it('asks Tauri for the admin session when it is there', async () => {
    const { tauriAdminSession } = await import('../lib/api/client');
    const invoke = vi.fn().mockResolvedValue({ token: 'adm_T', base_url: 'http://127.0.0.1:8788' });
    (globalThis as Record<string, unknown>).__TAURI_INTERNALS__ = { invoke };
    try {
      expect(await tauriAdminSession()).toEqual({ token: 'adm_T', baseUrl: 'http://127.0.0.1:8788' });
      expect(invoke).toHaveBeenCalledWith('admin_session');
    } finally {
      delete (globalThis as Record<string, unknown>).__TAURI_INTERNALS__;
    }
    expect(await tauriAdminSession()).toBeNull();
  });

  it('ends the session on 401', async () => {
    const seen = vi.fn();
    const off = onUnauthorized(seen);
    fetchMock.mockResolvedValueOnce(
      json(401, { error: { message: 'Invalid or missing admin credentials.', type: 'invalid_request_error', code: 'invalid_admin_token' } }),
    );
    const s = new KeysStore();
    await s.load();
    off();
    expect(seen).toHaveBeenCalledOnce();
    expect(session.state).toBe('ended');
    expect((s.error as ApiError).code).toBe('invalid_admin_token');
  });

  it('describes bodies that are not OpenAI-shaped', () => {
    expect(errorFromBody(400, 'Failed to deserialize query string').message).toBe('Failed to deserialize query string');
    expect(errorFromBody(502, null, 'Bad Gateway').message).toBe('The gateway answered 502 Bad Gateway.');
  });
});

describe('ToastStore', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('dismisses toasts after their time, errors later than successes', () => {
    const t = new ToastStore();
    t.success('Saved');
    t.error('Failed', 'why');
    vi.advanceTimersByTime(TOAST_MS.success + 1);
    expect(t.items.map((x) => x.title)).toEqual(['Failed']);
    vi.advanceTimersByTime(TOAST_MS.error);
    expect(t.items).toEqual([]);
  });

  it('holds a toast while hovered and keeps at most four', () => {
    const t = new ToastStore();
    const id = t.info('Hello');
    t.hold(id);
    vi.advanceTimersByTime(60_000);
    expect(t.items).toHaveLength(1);
    t.release(id);
    vi.advanceTimersByTime(TOAST_MS.info);
    expect(t.items).toHaveLength(0);
    for (let i = 0; i < 6; i++) t.info(`n${i}`);
    expect(t.items.map((x) => x.title)).toEqual(['n2', 'n3', 'n4', 'n5']);
  });
});

describe('router', () => {
  it('normalises paths', () => {
    expect(normalize('/keys/')).toBe('/keys');
    expect(normalize('')).toBe('/');
    expect(normalize('/audit?x=1#y')).toBe('/audit');
    expect(normalize('settings')).toBe('/settings');
  });
});
