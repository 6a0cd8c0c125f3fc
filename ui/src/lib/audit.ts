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
};

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
