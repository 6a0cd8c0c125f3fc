// Upstream model servers: the list, and the calls that change it.

import {
  api,
  unwrap,
  type CreateUpstream,
  type TestResult,
  type UpdateUpstream,
  type UpstreamView,
} from '../api/client';
import { Collection } from './collection.svelte';

export class UpstreamsStore extends Collection<UpstreamView> {
  /** Every model some upstream serves now, sorted, without repeats. */
  models = $derived([...new Set((this.items ?? []).flatMap((u) => u.served_models))].sort());

  constructor() {
    super(async () => unwrap(await api.GET('/admin/upstreams')).data, (u) => u.id);
  }

  async create(req: CreateUpstream): Promise<UpstreamView> {
    const view = unwrap(await api.POST('/admin/upstreams', { body: req }));
    this.put(view);
    return view;
  }

  async update(id: string, patch: UpdateUpstream): Promise<UpstreamView> {
    const view = unwrap(await api.PATCH('/admin/upstreams/{id}', { params: { path: { id } }, body: patch }));
    this.put(view);
    return view;
  }

  async remove(id: string): Promise<void> {
    unwrap(await api.DELETE('/admin/upstreams/{id}', { params: { path: { id } } }));
    this.drop(id);
  }

  async test(id: string): Promise<TestResult> {
    return unwrap(await api.POST('/admin/upstreams/{id}/test', { params: { path: { id } } }));
  }
}

export const upstreams = new UpstreamsStore();
