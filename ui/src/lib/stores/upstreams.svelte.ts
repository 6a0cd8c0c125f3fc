// Upstream model servers: the list, and the calls that change it.

import {
  api,
  unwrap,
  type CreateUpstream,
  type TestResult,
  type UpdateUpstream,
  type UpstreamView,
} from '../api/client';

export class UpstreamsStore {
  items = $state<UpstreamView[] | null>(null);
  error = $state<unknown>(null);
  loading = $state(false);

  /** Every model some upstream serves now, sorted, without repeats. */
  models = $derived([...new Set((this.items ?? []).flatMap((u) => u.served_models))].sort());

  async load(): Promise<void> {
    this.loading = true;
    try {
      this.items = unwrap(await api.GET('/admin/upstreams')).data;
      this.error = null;
    } catch (e) {
      this.error = e;
    } finally {
      this.loading = false;
    }
  }

  #put(view: UpstreamView): void {
    const list = this.items ?? [];
    const i = list.findIndex((u) => u.id === view.id);
    this.items = i < 0 ? [...list, view] : list.map((u) => (u.id === view.id ? view : u));
  }

  async create(req: CreateUpstream): Promise<UpstreamView> {
    const view = unwrap(await api.POST('/admin/upstreams', { body: req }));
    this.#put(view);
    return view;
  }

  async update(id: string, patch: UpdateUpstream): Promise<UpstreamView> {
    const view = unwrap(await api.PATCH('/admin/upstreams/{id}', { params: { path: { id } }, body: patch }));
    this.#put(view);
    return view;
  }

  async remove(id: string): Promise<void> {
    unwrap(await api.DELETE('/admin/upstreams/{id}', { params: { path: { id } } }));
    this.items = (this.items ?? []).filter((u) => u.id !== id);
  }

  async test(id: string): Promise<TestResult> {
    return unwrap(await api.POST('/admin/upstreams/{id}/test', { params: { path: { id } } }));
  }
}

export const upstreams = new UpstreamsStore();
