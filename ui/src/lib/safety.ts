// The Safety page's vocabulary, its forms and their conversion to merge
// patches of `settings.safety`, and how a scan result reads. Pure, unit-tested.

import type { Category, ExternalModerator, KeySafety, SafetyAction, SafetyConfig, ScanResult } from './api/client';
import { parseDuration } from './format';

export const CATEGORIES: readonly { id: Category; label: string }[] = [
  { id: 'harassment', label: 'Harassment' },
  { id: 'harassment/threatening', label: 'Harassment: threatening' },
  { id: 'hate', label: 'Hate' },
  { id: 'hate/threatening', label: 'Hate: threatening' },
  { id: 'illicit', label: 'Illicit' },
  { id: 'illicit/violent', label: 'Illicit: violent' },
  { id: 'self-harm', label: 'Self-harm' },
  { id: 'self-harm/intent', label: 'Self-harm: intent' },
  { id: 'self-harm/instructions', label: 'Self-harm: instructions' },
  { id: 'sexual', label: 'Sexual' },
  { id: 'sexual/minors', label: 'Sexual: minors' },
  { id: 'violence', label: 'Violence' },
  { id: 'violence/graphic', label: 'Violence: graphic' },
];

export const ACTIONS: readonly { value: SafetyAction; label: string }[] = [
  { value: 'block', label: 'Block' },
  { value: 'flag', label: 'Flag' },
  { value: 'log', label: 'Log only' },
];

export const ACTION_HINTS: Record<SafetyAction, string> = {
  block: 'Refuse the request, or withhold the answer.',
  flag: 'Let it through, mark the log record and tell the client in x-assisters-safety.',
  log: 'Let it through and only record the scores.',
};

export function actionLabel(a: string): string {
  return ACTIONS.find((x) => x.value === a)?.label ?? a;
}

export function categoryLabel(c: string): string {
  return CATEGORIES.find((x) => x.id === c)?.label ?? c;
}

/** `instruction_override` → "Instruction override". */
export function familyLabel(f: string): string {
  const s = f.replace(/_/g, ' ');
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** 0.734 → "73%"; only 0 shows as 0% and only 1 as 100%. */
export function percent(score: number): string {
  if (score > 0 && score < 0.005) return '<1%';
  if (score < 1 && score >= 0.995) return '>99%';
  return `${Math.round(score * 100)}%`;
}

/** How a score reads against its threshold. */
export function scoreTone(score: number, threshold: number): 'danger' | 'warning' | 'neutral' {
  if (score >= threshold) return 'danger';
  if (score > 0 && score >= threshold / 2) return 'warning';
  return 'neutral';
}

// ---------------------------------------------------------------------------
// Moderation and injection settings

export interface RulesForm {
  input: boolean;
  output: boolean;
  threshold: string;
  default_action: SafetyAction;
  /** Only the categories with their own action. */
  actions: Partial<Record<Category, SafetyAction>>;
  stream_hold_back_chars: string;
  injection_enabled: boolean;
  injection_threshold: string;
  injection_action: SafetyAction;
}

export type RulesErrors = Partial<Record<'threshold' | 'injection_threshold' | 'stream_hold_back_chars', string>>;

export function rulesForm(s: SafetyConfig): RulesForm {
  return {
    input: s.moderation.input,
    output: s.moderation.output,
    threshold: String(round(s.moderation.threshold)),
    default_action: s.moderation.default_action,
    actions: { ...(s.moderation.actions as Partial<Record<Category, SafetyAction>>) },
    stream_hold_back_chars: String(s.moderation.stream_hold_back_chars),
    injection_enabled: s.injection.enabled,
    injection_threshold: String(round(s.injection.threshold)),
    injection_action: s.injection.action,
  };
}

/**
 * Which cards have edits, valid or not (so Save can say what is wrong).
 * A category set to what it already does is no edit.
 */
export function rulesDirty(f: RulesForm, s: SafetyConfig): { moderation: boolean; injection: boolean } {
  const saved = rulesForm(s);
  const differs = (keys: (keyof RulesForm)[]) => keys.some((k) => f[k] !== saved[k]);
  return {
    moderation:
      differs(['input', 'output', 'threshold', 'default_action', 'stream_hold_back_chars']) ||
      CATEGORIES.some((c) => actionOf(f, c.id) !== actionOf(saved, c.id)),
    injection: differs(['injection_enabled', 'injection_threshold', 'injection_action']),
  };
}

/** The action a category takes under the form as it stands. */
export function actionOf(f: RulesForm, c: Category): SafetyAction {
  return f.actions[c] ?? f.default_action;
}

function round(x: number): number {
  // Thresholds travel as f32: 0.7 comes back as 0.699999988.
  return Math.round(x * 1000) / 1000;
}

function threshold(s: string): number | string {
  const n = Number(s.trim());
  if (!s.trim() || !Number.isFinite(n) || n <= 0 || n > 1) return 'A number above 0 and at most 1, e.g. 0.5.';
  return n;
}

/**
 * The merge patch of `settings.safety` that the form asks for, or the
 * errors to show. Per-category actions are only ever added or changed: a
 * merge patch cannot remove one.
 */
export function rulesPatch(f: RulesForm, s: SafetyConfig): { patch: Record<string, unknown>; errors: RulesErrors } {
  const errors: RulesErrors = {};
  const t = threshold(f.threshold);
  if (typeof t === 'string') errors.threshold = t;
  const it = threshold(f.injection_threshold);
  if (typeof it === 'string') errors.injection_threshold = it;
  const hold = f.stream_hold_back_chars.trim();
  if (!/^\d+$/.test(hold) || Number(hold) > 65_536) errors.stream_hold_back_chars = 'A whole number of characters, up to 65,536.';
  if (Object.keys(errors).length) return { patch: {}, errors };

  const m = s.moderation;
  const moderation: Record<string, unknown> = {};
  if (f.input !== m.input) moderation.input = f.input;
  if (f.output !== m.output) moderation.output = f.output;
  if (t !== round(m.threshold)) moderation.threshold = t;
  if (f.default_action !== m.default_action) moderation.default_action = f.default_action;
  if (Number(hold) !== m.stream_hold_back_chars) moderation.stream_hold_back_chars = Number(hold);
  const actions: Record<string, SafetyAction> = {};
  for (const [c, a] of Object.entries(f.actions)) {
    if (a && m.actions[c] !== a) actions[c] = a;
  }
  if (Object.keys(actions).length) moderation.actions = actions;

  const injection: Record<string, unknown> = {};
  if (f.injection_enabled !== s.injection.enabled) injection.enabled = f.injection_enabled;
  if (it !== round(s.injection.threshold)) injection.threshold = it;
  if (f.injection_action !== s.injection.action) injection.action = f.injection_action;

  const patch: Record<string, unknown> = {};
  if (Object.keys(moderation).length) patch.moderation = moderation;
  if (Object.keys(injection).length) patch.injection = injection;
  return { patch, errors };
}

// ---------------------------------------------------------------------------
// A key's own switches ('' follows the settings)

export type Switch = '' | 'on' | 'off';

export interface KeySafetyForm {
  input_moderation: Switch;
  output_moderation: Switch;
  moderation_action: SafetyAction | '';
  injection: Switch;
  injection_action: SafetyAction | '';
}

const SWITCHES = ['input_moderation', 'output_moderation', 'injection'] as const;
const KEY_ACTIONS = ['moderation_action', 'injection_action'] as const;

export function keySafetyForm(k: KeySafety | null | undefined): KeySafetyForm {
  const sw = (v: boolean | null | undefined): Switch => (v === true ? 'on' : v === false ? 'off' : '');
  return {
    input_moderation: sw(k?.input_moderation),
    output_moderation: sw(k?.output_moderation),
    moderation_action: k?.moderation_action ?? '',
    injection: sw(k?.injection),
    injection_action: k?.injection_action ?? '',
  };
}

/**
 * The key's switches from the form, keeping what the form does not show
 * (the injection threshold); null when the key follows the settings in all.
 */
export function keySafety(f: KeySafetyForm, current: KeySafety | null | undefined): KeySafety | null {
  const out: KeySafety = {};
  if (current?.injection_threshold != null) out.injection_threshold = current.injection_threshold;
  for (const k of SWITCHES) if (f[k]) out[k] = f[k] === 'on';
  for (const k of KEY_ACTIONS) if (f[k]) out[k] = f[k] as SafetyAction;
  return Object.keys(out).length ? out : null;
}

// ---------------------------------------------------------------------------
// External moderators

export interface ModeratorForm {
  name: string;
  kind: ExternalModerator['kind'];
  url: string;
  api_key_env: string;
  upstream: string;
  model: string;
  timeout: string;
  fail: NonNullable<ExternalModerator['fail']>;
}

export type ModeratorErrors = Partial<Record<keyof ModeratorForm, string>>;

export function moderatorForm(m?: ExternalModerator): ModeratorForm {
  return {
    name: m?.name ?? '',
    kind: m?.kind ?? 'openai',
    url: m?.url ?? '',
    api_key_env: m?.api_key_env ?? '',
    upstream: m?.upstream ?? '',
    model: m?.model ?? '',
    timeout: m?.timeout ?? '2s',
    fail: m?.fail ?? 'open',
  };
}

/** The moderator the form describes, or what to fix; `others` are the names taken. */
export function parseModerator(
  f: ModeratorForm,
  others: string[],
): { moderator: ExternalModerator | null; errors: ModeratorErrors } {
  const errors: ModeratorErrors = {};
  const name = f.name.trim();
  if (!name) errors.name = 'Give it a name.';
  else if (others.includes(name)) errors.name = 'Another moderator has this name.';
  const secs = parseDuration(f.timeout);
  if (secs === null || secs <= 0) errors.timeout = 'A duration such as 2s or 500ms.';
  if (f.kind === 'openai') {
    if (!/^https?:\/\/[^/\s]+/.test(f.url.trim())) errors.url = 'The full moderations URL, http:// or https://.';
    if (f.api_key_env.trim() && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(f.api_key_env.trim()))
      errors.api_key_env = 'An environment variable name, e.g. OPENAI_API_KEY.';
  } else {
    if (!f.upstream.trim()) errors.upstream = 'The upstream that serves the model.';
    if (!f.model.trim()) errors.model = 'The Llama Guard model to ask.';
  }
  if (Object.keys(errors).length) return { moderator: null, errors };
  const opt = (s: string) => (s.trim() ? s.trim() : null);
  const moderator: ExternalModerator =
    f.kind === 'openai'
      ? { name, kind: 'openai', url: f.url.trim(), api_key_env: opt(f.api_key_env), model: opt(f.model), timeout: f.timeout.trim(), fail: f.fail }
      : { name, kind: 'llama_guard', upstream: f.upstream.trim(), model: f.model.trim(), timeout: f.timeout.trim(), fail: f.fail };
  return { moderator, errors };
}

/** Where a moderator sends the text, for the list. */
export function moderatorTarget(m: ExternalModerator): string {
  if (m.kind === 'openai') return m.url ?? '';
  return `${m.model ?? '?'} on ${m.upstream ?? '?'}`;
}

// ---------------------------------------------------------------------------
// A scan, as the "try it" box tells it

export interface Verdict {
  tone: 'success' | 'warning' | 'danger';
  title: string;
  detail: string;
}

export function verdict(r: ScanResult): Verdict {
  if (r.decision === 'block') {
    return {
      tone: 'danger',
      title: 'Blocked',
      detail: r.refusal?.body.error.message ?? 'The gateway would refuse this request.',
    };
  }
  const fired = r.checks.filter((c) => c.status === 'ran' && c.fired.length > 0);
  const what = fired.flatMap((c) => c.fired.map((f) => (c.check === 'injection' ? familyLabel(f) : categoryLabel(f))));
  if (r.decision === 'flag') {
    return {
      tone: 'warning',
      title: 'Let through, flagged',
      detail: `Flagged for ${what.join(', ') || 'a rule'}; the client sees x-assisters-safety: flagged.`,
    };
  }
  const skipped = r.checks.some((c) => c.status === 'skipped');
  let detail = 'Nothing reached a threshold; the request would go to the model.';
  if (what.length) detail = `Recorded only (${what.join(', ')}): the action is set to log.`;
  else if (skipped) detail = 'Nothing that ran reached a threshold; some checks did not run (see below).';
  return { tone: 'success', title: 'Passes', detail };
}

/** The checks that did not run, with why (disabled, skipped after a block, moderator down). */
export function skippedChecks(r: ScanResult): string[] {
  return r.checks
    .filter((c) => c.status === 'skipped')
    .map((c) => `${c.check === 'injection' ? 'Injection detection' : `Moderation (${c.engine})`}: ${c.reason ?? 'skipped'}`);
}

/**
 * `list` with `moderator` in place of the one named `was` (a new one when
 * `was` is null or no longer there), other entries as they are.
 */
export function withModerator(
  list: ExternalModerator[],
  was: string | null,
  moderator: ExternalModerator,
): ExternalModerator[] {
  const at = was === null ? -1 : list.findIndex((m) => m.name === was);
  return at < 0 ? [...list, moderator] : list.map((m, i) => (i === at ? moderator : m));
}
