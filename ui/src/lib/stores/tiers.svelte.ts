// Tiers: named limits shared by keys.

import { api, unwrap, type Tier, type UpdateTier } from '../api/client';
import { Collection } from './collection.svelte';

export class TiersStore extends Collection<Tier> {
  names = $derived((this.items ?? []).map((t) => t.name));

  constructor() {
    super(async () => unwrap(await api.GET('/admin/tiers')).data, (t) => t.name);
  }

  async create(t: Tier): Promise<Tier> {
    const tier = unwrap(await api.POST('/admin/tiers', { body: t }));
    this.put(tier);
    return tier;
  }

  async update(name: string, patch: UpdateTier): Promise<Tier> {
    const tier = unwrap(await api.PATCH('/admin/tiers/{name}', { params: { path: { name } }, body: patch }));
    this.put(tier);
    return tier;
  }

  async remove(name: string): Promise<void> {
    unwrap(await api.DELETE('/admin/tiers/{name}', { params: { path: { name } } }));
    this.drop(name);
  }
}

export const tiers = new TiersStore();
