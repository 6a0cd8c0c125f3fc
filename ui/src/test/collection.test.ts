import { describe, expect, it } from 'vitest';
import { Collection, Confirm } from '../lib/stores/collection.svelte';

describe('Collection', () => {
  it('loads, puts by id and drops; keeps the error of a failed load', async () => {
    let fail = false;
    const c = new Collection<{ id: string; n: number }>(
      async () => {
        if (fail) throw new Error('boom');
        return [{ id: 'a', n: 1 }];
      },
      (x) => x.id,
    );
    expect(c.items).toBeNull();
    await c.load();
    expect(c.items).toEqual([{ id: 'a', n: 1 }]);
    c.put({ id: 'a', n: 2 });
    c.put({ id: 'b', n: 3 });
    expect(c.items).toEqual([
      { id: 'a', n: 2 },
      { id: 'b', n: 3 },
    ]);
    c.drop('a');
    expect(c.items?.map((x) => x.id)).toEqual(['b']);
    fail = true;
    await c.load();
    expect((c.error as Error).message).toBe('boom');
    expect(c.items?.map((x) => x.id)).toEqual(['b']);
    expect(c.loading).toBe(false);
  });

  it('remembers what a confirmation is about', () => {
    const c = new Confirm<string>();
    expect([c.open, c.target]).toEqual([false, null]);
    c.ask('x');
    expect([c.open, c.target]).toEqual([true, 'x']);
  });
});
