// The status page's vocabulary (Statuspage's words, as the API spells
// them), and the conversions its forms need. Pure, unit-tested.

import type { ComponentStatus, Impact, IncidentStatus, MaintenanceStatus, StatusComponent } from './api/client';

export type Tone = 'neutral' | 'accent' | 'success' | 'warning' | 'danger';

export const COMPONENT_STATUS: Record<ComponentStatus, { label: string; tone: Tone }> = {
  operational: { label: 'Operational', tone: 'success' },
  under_maintenance: { label: 'Under maintenance', tone: 'accent' },
  degraded_performance: { label: 'Degraded performance', tone: 'warning' },
  partial_outage: { label: 'Partial outage', tone: 'warning' },
  major_outage: { label: 'Major outage', tone: 'danger' },
};

export const IMPACTS: readonly { value: Impact; label: string; tone: Tone }[] = [
  { value: 'none', label: 'None', tone: 'neutral' },
  { value: 'maintenance', label: 'Maintenance', tone: 'accent' },
  { value: 'minor', label: 'Minor', tone: 'warning' },
  { value: 'major', label: 'Major', tone: 'danger' },
  { value: 'critical', label: 'Critical', tone: 'danger' },
];

/** The impacts an administrator picks for an incident (maintenance has its own windows). */
export const INCIDENT_IMPACTS = IMPACTS.filter((i) => i.value !== 'maintenance');

export const INCIDENT_STATUSES: readonly { value: IncidentStatus; label: string; hint: string }[] = [
  { value: 'investigating', label: 'Investigating', hint: 'Looking into it.' },
  { value: 'identified', label: 'Identified', hint: 'The cause is known; a fix is under way.' },
  { value: 'monitoring', label: 'Monitoring', hint: 'A fix is in; watching that it holds.' },
  { value: 'resolved', label: 'Resolved', hint: 'Closes the incident.' },
];

export const MAINTENANCE_STATUS: Record<MaintenanceStatus, { label: string; tone: Tone }> = {
  scheduled: { label: 'Scheduled', tone: 'accent' },
  in_progress: { label: 'In progress', tone: 'warning' },
  completed: { label: 'Completed', tone: 'neutral' },
};

export function impactOf(i: Impact): { label: string; tone: Tone } {
  return IMPACTS.find((x) => x.value === i) ?? { label: i, tone: 'neutral' };
}

export function incidentStatusLabel(s: IncidentStatus): string {
  return INCIDENT_STATUSES.find((x) => x.value === s)?.label ?? s;
}

/** The overall indicator's tone. */
export function indicatorTone(i: Impact): Tone {
  return i === 'none' ? 'success' : impactOf(i).tone;
}

/** Component ids as names, for lists ("Gateway, local-mock"). */
export function componentNames(ids: string[], components: StatusComponent[]): string {
  return ids.map((id) => components.find((c) => c.id === id)?.name ?? id).join(', ');
}

/** A Date as a `datetime-local` input's value, in the browser's time zone. */
export function localInputValue(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** A `datetime-local` value (browser time zone) as RFC 3339 in UTC, or null. */
export function toRfc3339(local: string): string | null {
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/.test(local)) return null;
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? null : d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export interface WindowForm {
  name: string;
  body: string;
  components: string[];
  start: string;
  end: string;
}

export type WindowErrors = Partial<Record<keyof WindowForm, string>>;

/** A maintenance window to schedule, or what to fix. */
export function parseWindow(
  f: WindowForm,
  now: Date = new Date(),
): { window: { name: string; body: string; components: string[]; scheduled_for: string; scheduled_until: string } | null; errors: WindowErrors } {
  const errors: WindowErrors = {};
  if (!f.name.trim()) errors.name = 'Say what the maintenance is, e.g. "Upgrading the GPU hosts".';
  if (!f.components.length) errors.components = 'Pick at least one component.';
  const start = toRfc3339(f.start);
  const end = toRfc3339(f.end);
  if (!start) errors.start = 'Pick a start date and time.';
  if (!end) errors.end = 'Pick an end date and time.';
  else if (start && new Date(end) <= new Date(start)) errors.end = 'The end must come after the start.';
  else if (new Date(end) <= now) errors.end = 'The end is in the past.';
  if (Object.keys(errors).length || !start || !end) return { window: null, errors };
  return {
    window: { name: f.name.trim(), body: f.body.trim(), components: f.components, scheduled_for: start, scheduled_until: end },
    errors,
  };
}

/** A fresh window form: starting at the next full hour, for an hour. */
export function windowForm(now: Date = new Date()): WindowForm {
  const start = new Date(now);
  start.setMinutes(0, 0, 0);
  start.setHours(start.getHours() + 1);
  const end = new Date(start.getTime() + 60 * 60 * 1000);
  return { name: '', body: '', components: [], start: localInputValue(start), end: localInputValue(end) };
}

/** Uptime as the page shows it: 99.95%, never rounded up to 100% unless it is. */
export function uptimePercent(u: number | null | undefined): string {
  if (u === null || u === undefined) return '—';
  if (u >= 1) return '100%';
  return `${(Math.floor(u * 10000) / 100).toFixed(2)}%`;
}
