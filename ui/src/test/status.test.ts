import { describe, expect, it } from 'vitest';
import type { StatusComponent } from '../lib/api/client';
import {
  COMPONENT_STATUS,
  componentNames,
  impactOf,
  incidentStatusLabel,
  indicatorTone,
  localInputValue,
  parseWindow,
  toRfc3339,
  uptimePercent,
  windowForm,
} from '../lib/status';

const components: StatusComponent[] = [
  { id: 'gateway', name: 'Gateway API', kind: 'gateway', status: 'operational', position: 0 },
  { id: 'ups_1', name: 'local-mock', kind: 'upstream', status: 'major_outage', position: 2 },
];

describe('status vocabulary', () => {
  it('labels and tones states, impacts and stages', () => {
    expect(COMPONENT_STATUS.major_outage).toEqual({ label: 'Major outage', tone: 'danger' });
    expect(impactOf('minor')).toEqual({ label: 'Minor', value: 'minor', tone: 'warning' });
    expect(indicatorTone('none')).toBe('success');
    expect(indicatorTone('critical')).toBe('danger');
    expect(incidentStatusLabel('monitoring')).toBe('Monitoring');
  });

  it('names components by id, keeping unknown ids', () => {
    expect(componentNames(['ups_1', 'gone'], components)).toBe('local-mock, gone');
  });

  it('shows uptime without rounding an outage away', () => {
    expect(uptimePercent(1)).toBe('100%');
    expect(uptimePercent(0.99999)).toBe('99.99%');
    expect(uptimePercent(0.5)).toBe('50.00%');
    expect(uptimePercent(null)).toBe('—');
  });
});

describe('maintenance window form', () => {
  const now = new Date(2026, 10, 29, 9, 20);

  it('starts at the next full hour, for an hour', () => {
    const f = windowForm(now);
    expect(f.start).toBe('2026-11-29T10:00');
    expect(f.end).toBe('2026-11-29T11:00');
  });

  it('converts local input values to RFC 3339 UTC and back', () => {
    const local = localInputValue(now);
    expect(local).toBe('2026-11-29T09:20');
    expect(new Date(toRfc3339(local)!).getTime()).toBe(now.getTime());
    expect(toRfc3339('')).toBeNull();
    expect(toRfc3339('tomorrow')).toBeNull();
  });

  it('asks for a title, components and an end after the start', () => {
    const f = { ...windowForm(now), end: '2026-11-29T09:00' };
    const { window, errors } = parseWindow(f, now);
    expect(window).toBeNull();
    expect(Object.keys(errors).sort()).toEqual(['components', 'end', 'name']);
    const ok = parseWindow({ ...windowForm(now), name: ' Upgrade ', components: ['gateway'] }, now);
    expect(ok.errors).toEqual({});
    expect(ok.window).toMatchObject({ name: 'Upgrade', components: ['gateway'] });
    expect(ok.window!.scheduled_for).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
  });

  it('refuses a window already over', () => {
    const past = { ...windowForm(now), name: 'x', components: ['gateway'], start: '2026-11-28T08:00', end: '2026-11-28T09:00' };
    expect(parseWindow(past, now).errors.end).toMatch(/past/);
  });
});
