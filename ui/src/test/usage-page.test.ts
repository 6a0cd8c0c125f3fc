// The Usage page says when the gateway answered with only the newest rows
// of a range too large for one answer.
import { expect, it, vi } from 'vitest';

vi.hoisted(() => {
  globalThis.ResizeObserver = class {
    observe() {}
    unobserve() {}
    disconnect() {}
  } as unknown as typeof ResizeObserver;
  globalThis.matchMedia = (() => ({ matches: false, addEventListener() {}, removeEventListener() {} })) as unknown as typeof matchMedia;
  globalThis.fetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const req = input instanceof Request ? input : new Request(String(input), init);
    const p = new URL(req.url).pathname;
    const j = (b: unknown, s = 200) => new Response(JSON.stringify(b), { status: s, headers: { 'content-type': 'application/json' } });
    const today = new Date().toISOString().slice(0, 10) + 'T00:00:00Z';
    const row = { bucket: today, key_id: 'k', model: 'm', requests: 5, errors: 0, prompt_tokens: 1, completion_tokens: 1, latency_avg_ms: 1, latency_p50_ms: 1, latency_p95_ms: 1, latency_p99_ms: 1 };
    if (p === '/admin/usage') return j({ granularity: 'day', data: [row], truncated: true });
    if (p === '/admin/keys') return j({ data: [] });
    if (p === '/admin/upstreams') return j({ data: [] });
    return j({ error: { message: 'nope', type: 'x' } }, 404);
  }) as typeof fetch;
});

vi.mock('uplot', () => {
  class U {
    series: unknown[];
    constructor(o: { series: unknown[] }) {
      this.series = o.series;
    }
    destroy() {}
    setData() {}
    setSize() {}
  }
  (U as unknown as { paths: unknown }).paths = { bars: () => () => null };
  return { default: U };
});
vi.mock('uplot/dist/uPlot.min.css', () => ({}));

import { flushSync, mount } from 'svelte';
import Usage from '../pages/Usage.svelte';

it('a truncated answer is said to be one', async () => {
  const target = document.createElement('div');
  document.body.append(target);
  mount(Usage, { target });
  await new Promise((r) => setTimeout(r, 200));
  flushSync();
  expect(target.textContent).toContain('more than 100,000 rows');
});
