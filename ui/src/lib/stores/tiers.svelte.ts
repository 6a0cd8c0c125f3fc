// Tiers: named limits shared by keys.

import { api, unwrap, type Tier, type UpdateTier } from '../api/client';

export class TiersStore {
  items = $state<Tier[] | null>(null);
  error = $state<unknown>(null);
  loading = $state(false);

  names = $derived((this.items ?? []).map((t) => t.name));

  async load(): Promise<void> {
    this.loading = true;
    try {
      this.items = unwrap(await api.GET('/admin/tiers')).data;
      this.error = null;
    } catch (e) {
      this.error = e;
    } finally {
      this.loading = false;
    }
  }

  #put(t: Tier): void {
    const list = this.items ?? [];
    const i = list.findIndex((x) => x.name === t.name);
    this.items = i < 0 ? [...list, t] : list.map((x) => (x.name === t.name ? t : x));
  }

  async create(t: Tier): Promise<Tier> {
    const tier = unwrap(await api.POST('/admin/tiers', { body: t }));
    this.#put(tier);
    return tier;
  }

  async update(name: string, patch: UpdateTier): Promise<Tier> {
    const tier = unwrap(await api.PATCH('/admin/tiers/{name}', { params: { path: { name } }, body: patch }));
    this.#put(tier);
    return tier;
  }

  async remove(name: string): Promise<void> {
    unwrap(await api.DELETE('/admin/tiers/{name}', { params: { path: { name } } }));
    this.items = (this.items ?? []).filter((t) => t.name !== name);
  }
}

export const tiers = new TiersStore();
