// API keys: the list, and the calls that change it.

import { api, unwrap, type CreateKey, type CreatedKey, type KeyView, type Rotated, type UpdateKey } from '../api/client';
import { Collection } from './collection.svelte';

export class KeysStore extends Collection<KeyView> {
  active = $derived(this.items?.filter((k) => k.status === 'active').length ?? 0);

  constructor() {
    super(async () => unwrap(await api.GET('/admin/keys')).data, (k) => k.id);
  }

  async create(req: CreateKey): Promise<CreatedKey> {
    const created = unwrap(await api.POST('/admin/keys', { body: req }));
    // The list must never hold the secret.
    const { key: _secret, ...view } = created;
    this.put(view);
    return created;
  }

  async update(id: string, patch: UpdateKey): Promise<KeyView> {
    const view = unwrap(await api.PATCH('/admin/keys/{id}', { params: { path: { id } }, body: patch }));
    this.put(view);
    return view;
  }

  /** Issues a successor; the old key keeps working for `grace` (e.g. "24h"). */
  async rotate(id: string, grace: string): Promise<Rotated> {
    const rotated = unwrap(await api.POST('/admin/keys/{id}/rotate', { params: { path: { id } }, body: { grace } }));
    const { key: _secret, ...view } = rotated.new;
    this.put(rotated.old);
    this.put(view);
    return rotated;
  }

  async revoke(id: string): Promise<KeyView> {
    const view = unwrap(await api.POST('/admin/keys/{id}/revoke', { params: { path: { id } } }));
    this.put(view);
    return view;
  }
}

export const keys = new KeysStore();
