// Helpers of the Audit page.

const ACTIONS: Record<string, string> = {
  'key.create': 'Key created',
  'key.update': 'Key updated',
  'key.revoke': 'Key revoked',
  'key.rotate': 'Key rotated',
  'upstream.create': 'Upstream added',
  'upstream.update': 'Upstream updated',
  'upstream.delete': 'Upstream deleted',
  'settings.update': 'Settings changed',
  'session.login': 'Dashboard sign-in',
  'session.link': 'Sign-in link issued',
  'tier.create': 'Tier created',
  'tier.update': 'Tier updated',
  'tier.delete': 'Tier deleted',
  'log.read_body': 'Request body read',
  'crypto.rotate': 'Master key rotated',
  'tls.reload': 'Certificate reloaded',
  'admin_token.rotate': 'Admin token rotated',
  'incident.create': 'Incident opened',
  'incident.update': 'Incident updated',
  'maintenance.create': 'Maintenance scheduled',
  'maintenance.update': 'Maintenance changed',
  'status.subscriber.create': 'Status subscriber added',
  'status.subscriber.delete': 'Status subscriber removed',
  'audit.prune': 'Old entries pruned',
};

/** The families of actions the Audit page filters by (`?action=key` matches `key.*`). */
export const ACTION_FAMILIES: readonly { value: string; label: string }[] = [
  { value: 'key', label: 'Keys' },
  { value: 'tier', label: 'Tiers' },
  { value: 'upstream', label: 'Upstreams' },
  { value: 'settings', label: 'Settings' },
  { value: 'log', label: 'Request bodies read' },
  { value: 'session', label: 'Dashboard sign-ins' },
  { value: 'admin_token', label: 'Admin token' },
  { value: 'crypto', label: 'Master key' },
  { value: 'tls', label: 'TLS' },
  { value: 'incident', label: 'Incidents' },
  { value: 'maintenance', label: 'Maintenance' },
  { value: 'status', label: 'Status subscribers' },
  { value: 'audit', label: 'Audit log pruning' },
];

export const ACTORS: readonly { value: string; label: string }[] = [
  { value: 'dashboard', label: 'Dashboard' },
  { value: 'admin-token', label: 'Admin token (CLI, scripts)' },
  { value: 'system', label: 'The gateway itself' },
];

export interface AuditFilter {
  action: string;
  actor: string;
  target: string;
}

export const NO_AUDIT_FILTER: AuditFilter = { action: '', actor: '', target: '' };

/** The query parameters of a filter: only those set, trimmed. */
export function auditQuery(f: AuditFilter): { action?: string; actor?: string; target?: string } {
  const q: { action?: string; actor?: string; target?: string } = {};
  for (const k of ['action', 'actor', 'target'] as const) {
    const v = f[k].trim();
    if (v) q[k] = v;
  }
  return q;
}

/** "key.create" → "Key created"; unknown actions are shown as they are. */
export function describeAction(action: string): string {
  return ACTIONS[action] ?? action;
}

export type ActionTone = 'success' | 'danger' | 'accent' | 'neutral';

export function actionTone(action: string): ActionTone {
  if (/\.(create|login)$/.test(action)) return 'success';
  if (/\.(revoke|delete)$/.test(action)) return 'danger';
  if (/\.(update|rotate)$/.test(action)) return 'accent';
  return 'neutral';
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Dotted paths of the leaves that differ between two snapshots. */
export function changedFields(before: unknown, after: unknown, prefix = ''): string[] {
  if (!isObject(before) || !isObject(after)) {
    return JSON.stringify(before) === JSON.stringify(after) ? [] : prefix ? [prefix] : [];
  }
  const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
  return keys.flatMap((k) => {
    const path = prefix ? `${prefix}.${k}` : k;
    const a = before[k];
    const b = after[k];
    if (isObject(a) && isObject(b)) return changedFields(a, b, path);
    return JSON.stringify(a) === JSON.stringify(b) ? [] : [path];
  });
}

/** Cursor paging over `before`: the stack of cursors of the pages seen. */
export class AuditCursor {
  /** `before` of each page visited; the first page has none. */
  stack: (number | null)[] = [null];

  get current(): number | null {
    return this.stack[this.stack.length - 1];
  }

  get page(): number {
    return this.stack.length;
  }

  /** Moves to the page after one whose last entry had sequence `lastSeq`. */
  older(lastSeq: number): number | null {
    this.stack.push(lastSeq);
    return this.current;
  }

  newer(): number | null {
    if (this.stack.length > 1) this.stack.pop();
    return this.current;
  }

  reset(): void {
    this.stack = [null];
  }
}
