// The dashboard's pages, in navigation order.

export interface Page {
  path: string;
  label: string;
  group: 'Gateway' | 'Observe' | 'System';
  /** The gateway has no API for it yet; the page says so. */
  soon?: boolean;
}

export const PAGES: Page[] = [
  { path: '/', label: 'Overview', group: 'Gateway' },
  { path: '/keys', label: 'Keys', group: 'Gateway' },
  { path: '/tiers', label: 'Tiers', group: 'Gateway' },
  { path: '/upstreams', label: 'Upstreams', group: 'Gateway' },
  { path: '/safety', label: 'Safety', group: 'Gateway' },
  { path: '/logs', label: 'Logs', group: 'Observe' },
  { path: '/usage', label: 'Usage', group: 'Observe' },
  { path: '/audit', label: 'Audit', group: 'Observe' },
  { path: '/status', label: 'Status', group: 'Observe' },
  { path: '/settings', label: 'Settings', group: 'System' },
];

export function pageFor(path: string): Page | undefined {
  return PAGES.find((p) => p.path === path);
}
