// A live chart follows its moving range by new data, not by being torn down
// and built again every second (which also lost the reader's hover).
import { expect, it, vi } from 'vitest';

const made = vi.hoisted(() => ({ built: 0, destroyed: 0, data: 0 }));
vi.mock('uplot', () => {
  class U {
    series: unknown[];
    constructor(o: { series: unknown[] }) {
      made.built++;
      this.series = o.series;
    }
    destroy() {
      made.destroyed++;
    }
    setData() {
      made.data++;
    }
    setSize() {}
  }
  (U as unknown as { paths: unknown }).paths = { bars: () => () => null };
  return { default: U };
});
vi.mock('uplot/dist/uPlot.min.css', () => ({}));

import { flushSync, mount } from 'svelte';
import Harness from './ChartHarness.svelte';

it('a moving range updates the chart without rebuilding it', () => {
  globalThis.ResizeObserver = class {
    observe() {}
    unobserve() {}
    disconnect() {}
  } as unknown as typeof ResizeObserver;
  globalThis.matchMedia = (() => ({ addEventListener() {}, removeEventListener() {} })) as unknown as typeof matchMedia;
  const target = document.createElement('div');
  document.body.append(target);
  const h = mount(Harness, { target }) as unknown as { tick: () => void };
  flushSync();
  for (let i = 0; i < 10; i++) {
    h.tick();
    flushSync();
  }
  expect(made.built).toBe(1);
  expect(made.destroyed).toBe(0);
  expect(made.data).toBeGreaterThanOrEqual(10);
});
