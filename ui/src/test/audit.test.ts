import { describe, expect, it } from 'vitest';
import { AuditCursor, NO_AUDIT_FILTER, actionTone, auditQuery, changedFields, describeAction } from '../lib/audit';

describe('audit helpers', () => {
  it('describes known actions and passes unknown ones through', () => {
    expect(describeAction('key.create')).toBe('Key created');
    expect(describeAction('tier.frobnicate')).toBe('tier.frobnicate');
    expect(actionTone('key.revoke')).toBe('danger');
    expect(actionTone('upstream.create')).toBe('success');
    expect(actionTone('settings.update')).toBe('accent');
    expect(actionTone('session.link')).toBe('neutral');
  });
  it('lists changed fields by dotted path', () => {
    expect(changedFields({ a: 1, b: { c: 2, d: 3 } }, { a: 1, b: { c: 5, d: 3 }, e: true })).toEqual(['b.c', 'e']);
    expect(changedFields({ models: ['x'] }, { models: ['x', 'y'] })).toEqual(['models']);
    expect(changedFields({ a: 1 }, { a: 1 })).toEqual([]);
  });
  it('pages backwards with before and returns', () => {
    const c = new AuditCursor();
    expect(c.current).toBeNull();
    expect(c.older(75)).toBe(75);
    expect(c.older(50)).toBe(50);
    expect(c.page).toBe(3);
    expect(c.newer()).toBe(75);
    expect(c.newer()).toBeNull();
    expect(c.newer()).toBeNull();
    c.older(10);
    c.reset();
    expect(c.page).toBe(1);
  });
});

describe('audit filters', () => {
  it('sends only the filters that are set, trimmed', () => {
    expect(auditQuery(NO_AUDIT_FILTER)).toEqual({});
    expect(auditQuery({ action: 'key', actor: '', target: '  key_123 ' })).toEqual({ action: 'key', target: 'key_123' });
    expect(describeAction('admin_token.rotate')).toBe('Admin token rotated');
  });
});
