// The Settings page opened after a change made elsewhere (the CLI, another
// tab): its forms show the server's current values, count as unedited, and
// a save sends only what was edited, never the values the app loaded first.
import { describe, expect, it, vi } from 'vitest';

const patches = vi.hoisted(() => {
  const sent: string[] = [];
  const fresh = {"settings": {"echo_model": true, "limits": {"max_body_bytes": 16777216, "max_response_bytes": 67108864, "default_max_tokens": 2048, "usage_drain_timeout": "30s"}, "access": {"trusted_proxies": [], "allowed_ips": [], "auth_failures_per_min": 30}, "logs": {"store_bodies": true, "redact": {"emails": false, "phones": false, "cards": false, "api_keys": false}, "retention": {"request_logs": "30days", "usage": "90days", "audit": "forever"}}, "validation": {"enabled": true, "max_messages": 1024, "max_message_chars": 1000000, "max_total_chars": 4000000, "max_tokens": 1000000, "max_n": 16, "max_depth": 32}, "safety": {"moderation": {"input": true, "output": true, "threshold": 0.5, "default_action": "block", "actions": {}, "stream_hold_back_chars": 256}, "injection": {"enabled": true, "threshold": 0.5, "action": "block"}, "external": []}, "upstream_defaults": {"connect_timeout": "5s", "first_byte_timeout": "2m", "total_timeout": "10m", "stream_idle_timeout": "2m", "pool_max_idle_per_host": 256}, "routes": [], "health": {"interval": "15s", "timeout": "5s", "failure_threshold": 3, "open_for": "30s"}, "status": {"public": true, "name": "Assisters Gateway", "url": null, "sample_interval": "30s", "auto_incidents": true}, "notify": {"smtp": null, "attempts": 5, "retry_base": "2s"}}, "listeners": {"listen": "127.0.0.1:41117", "admin_listen": "127.0.0.1:43187", "pid": 22522, "version": "0.1.0"}, "data_dir": "/tmp/review-ui/data", "version": "0.1.0"};
  globalThis.fetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const req = input instanceof Request ? input : new Request(String(input), init);
    const p = new URL(req.url).pathname;
    const j = (b: unknown, s = 200) => new Response(JSON.stringify(b), { status: s, headers: { 'content-type': 'application/json' } });
    if (p === '/admin/settings' && req.method === 'PATCH') {
      sent.push(await req.text());
      return j(fresh);
    }
    if (p === '/admin/settings') return j(fresh);
    return j({ error: { message: 'nope', type: 'x' } }, 404);
  }) as typeof fetch;
  return sent;
});

import { flushSync, mount } from 'svelte';
import { gateway } from '../lib/stores/gateway.svelte';
import Settings from '../pages/Settings.svelte';

describe('settings forms', () => {
  it('follow fresher settings until edited, and save only the edits', async () => {
    // What the app loaded when the dashboard opened: 8 MiB and 1024 tokens,
    // since changed on the server to 16 MiB and 2048.
    gateway.view = {"settings": {"echo_model": true, "limits": {"max_body_bytes": 8388608, "max_response_bytes": 67108864, "default_max_tokens": 1024, "usage_drain_timeout": "30s"}, "access": {"trusted_proxies": [], "allowed_ips": [], "auth_failures_per_min": 30}, "logs": {"store_bodies": true, "redact": {"emails": false, "phones": false, "cards": false, "api_keys": false}, "retention": {"request_logs": "30days", "usage": "90days", "audit": "forever"}}, "validation": {"enabled": true, "max_messages": 1024, "max_message_chars": 1000000, "max_total_chars": 4000000, "max_tokens": 1000000, "max_n": 16, "max_depth": 32}, "safety": {"moderation": {"input": true, "output": true, "threshold": 0.5, "default_action": "block", "actions": {}, "stream_hold_back_chars": 256}, "injection": {"enabled": true, "threshold": 0.5, "action": "block"}, "external": []}, "upstream_defaults": {"connect_timeout": "5s", "first_byte_timeout": "2m", "total_timeout": "10m", "stream_idle_timeout": "2m", "pool_max_idle_per_host": 256}, "routes": [], "health": {"interval": "15s", "timeout": "5s", "failure_threshold": 3, "open_for": "30s"}, "status": {"public": true, "name": "Assisters Gateway", "url": null, "sample_interval": "30s", "auto_incidents": true}, "notify": {"smtp": null, "attempts": 5, "retry_base": "2s"}}, "listeners": {"listen": "127.0.0.1:41117", "admin_listen": "127.0.0.1:43187", "pid": 22522, "version": "0.1.0"}, "data_dir": "/tmp/review-ui/data", "version": "0.1.0"} as any;
    const target = document.createElement('div');
    document.body.append(target);
    mount(Settings, { target });
    await new Promise((r) => setTimeout(r, 200));
    flushSync();
    const body = target.querySelector<HTMLInputElement>('#max-body')!;
    const tokens = target.querySelector<HTMLInputElement>('#max-tokens')!;
    expect([body.value, tokens.value]).toEqual(['16', '2048']);
    const save = [...target.querySelectorAll('button')].find((b) => b.textContent?.includes('Save limits'))!;
    expect(save.disabled).toBe(true);

    const drain = target.querySelector<HTMLInputElement>('#drain')!;
    drain.value = '45s';
    drain.dispatchEvent(new Event('input', { bubbles: true }));
    flushSync();
    expect(save.disabled).toBe(false);
    save.closest('form')!.requestSubmit();
    await new Promise((r) => setTimeout(r, 100));
    expect(patches.map((p) => JSON.parse(p))).toEqual([{ limits: { usage_drain_timeout: '45s' } }]);
  });
});
