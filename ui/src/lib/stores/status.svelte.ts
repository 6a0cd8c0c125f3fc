// The status page as administrators run it: components and the overall
// indicator, incidents, maintenance windows and subscribers, and the calls
// that change them. After a change the components are read again, since an
// incident or a window changes their states.

import {
  api,
  unwrap,
  type CreatedSubscriber,
  type Incident,
  type IncidentStatus,
  type Impact,
  type Maintenance,
  type MaintenanceStatus,
  type StatusView,
  type Subscriber,
} from '../api/client';
import { Collection } from './collection.svelte';

class StatusStore {
  view = $state<StatusView | null>(null);
  error = $state<unknown>(null);
  /** Over the last 90 days, by component id. */
  uptime = $state<Record<string, number | null>>({});

  // The open incidents are asked for on their own: the 50 newest can all be
  // resolved ones, and an open incident must never drop off this page.
  incidents = new Collection<Incident>(async () => {
    const [open, recent] = await Promise.all([
      api.GET('/admin/incidents', { params: { query: { open: true, limit: 500 } } }),
      api.GET('/admin/incidents', { params: { query: { limit: 50 } } }),
    ]);
    const byId = new Map<string, Incident>();
    for (const i of [...unwrap(open).data, ...unwrap(recent).data]) if (!byId.has(i.id)) byId.set(i.id, i);
    return [...byId.values()];
  }, (i) => i.id);
  maintenances = new Collection<Maintenance>(async () => unwrap(await api.GET('/admin/maintenances')).data, (m) => m.id);
  subscribers = new Collection<Subscriber>(async () => unwrap(await api.GET('/admin/status/subscribers')).data, (s) => s.id);

  async loadView(): Promise<void> {
    try {
      this.view = unwrap(await api.GET('/admin/status'));
      this.error = null;
    } catch (e) {
      this.error = e;
    }
  }

  async loadUptime(): Promise<void> {
    try {
      const h = unwrap(await api.GET('/admin/status/uptime'));
      this.uptime = Object.fromEntries(h.data.map((c) => [c.id, c.uptime ?? null]));
    } catch {
      // The uptime column is a nicety: the rest of the page works without it.
    }
  }

  async load(): Promise<void> {
    await Promise.all([this.loadView(), this.loadUptime(), this.incidents.load(), this.maintenances.load(), this.subscribers.load()]);
  }

  async openIncident(req: { name: string; impact: Impact; components: string[]; body: string }): Promise<Incident> {
    const i = unwrap(await api.POST('/admin/incidents', { body: req }));
    this.incidents.items = [i, ...(this.incidents.items ?? [])];
    void this.loadView();
    return i;
  }

  async postUpdate(id: string, status: IncidentStatus, body: string): Promise<Incident> {
    const i = unwrap(await api.POST('/admin/incidents/{id}/updates', { params: { path: { id } }, body: { status, body } }));
    this.incidents.put(i);
    void this.loadView();
    return i;
  }

  async schedule(req: { name: string; body: string; components: string[]; scheduled_for: string; scheduled_until: string }): Promise<Maintenance> {
    const m = unwrap(await api.POST('/admin/maintenances', { body: req }));
    this.maintenances.items = [m, ...(this.maintenances.items ?? [])];
    void this.loadView();
    return m;
  }

  async setMaintenance(id: string, status: MaintenanceStatus): Promise<Maintenance> {
    const m = unwrap(await api.PATCH('/admin/maintenances/{id}', { params: { path: { id } }, body: { status } }));
    this.maintenances.put(m);
    void this.loadView();
    return m;
  }

  async subscribe(kind: 'email' | 'webhook', target: string): Promise<CreatedSubscriber> {
    const s = unwrap(await api.POST('/admin/status/subscribers', { body: { kind, target } }));
    this.subscribers.put({ id: s.id, kind: s.kind, target: s.target, created_at: s.created_at });
    return s;
  }

  async unsubscribe(id: string): Promise<void> {
    unwrap(await api.DELETE('/admin/status/subscribers/{id}', { params: { path: { id } } }));
    this.subscribers.drop(id);
  }
}

export const status = new StatusStore();
