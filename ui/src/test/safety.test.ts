import { describe, expect, it } from 'vitest';
import type { SafetyConfig, ScanResult } from '../lib/api/client';
import {
  actionLabel,
  actionOf,
  categoryLabel,
  familyLabel,
  keySafety,
  keySafetyForm,
  moderatorForm,
  moderatorTarget,
  parseModerator,
  percent,
  rulesForm,
  rulesDirty,
  rulesPatch,
  scoreTone,
  skippedChecks,
  verdict,
  withModerator,
} from '../lib/safety';

const safety: SafetyConfig = {
  moderation: {
    input: true,
    output: true,
    // As an f32 comes back through JSON.
    threshold: 0.699999988079071,
    default_action: 'block',
    actions: { harassment: 'flag' },
    stream_hold_back_chars: 256,
  },
  injection: { enabled: true, threshold: 0.5, action: 'block' },
  external: [],
};

describe('safety vocabulary', () => {
  it('names categories, families and actions', () => {
    expect(categoryLabel('self-harm/intent')).toBe('Self-harm: intent');
    expect(categoryLabel('unknown/thing')).toBe('unknown/thing');
    expect(familyLabel('instruction_override')).toBe('Instruction override');
    expect(actionLabel('log')).toBe('Log only');
  });

  it('shows scores as percentages and tones them against the threshold', () => {
    expect(percent(0.734)).toBe('73%');
    expect(percent(0)).toBe('0%');
    expect(percent(0.001)).toBe('<1%');
    expect(percent(0.999)).toBe('>99%');
    expect(percent(1)).toBe('100%');
    expect(scoreTone(0.5, 0.5)).toBe('danger');
    expect(scoreTone(0.3, 0.5)).toBe('warning');
    expect(scoreTone(0.1, 0.5)).toBe('neutral');
    expect(scoreTone(0, 0.5)).toBe('neutral');
  });
});

describe('moderation and injection form', () => {
  it('round-trips the settings without a change', () => {
    const f = rulesForm(safety);
    expect(f.threshold).toBe('0.7');
    expect(actionOf(f, 'harassment')).toBe('flag');
    expect(actionOf(f, 'hate')).toBe('block');
    expect(rulesPatch(f, safety)).toEqual({ patch: {}, errors: {} });
  });

  it('patches only what changed, per section', () => {
    const f = rulesForm(safety);
    f.output = false;
    f.actions = { ...f.actions, violence: 'log' };
    f.injection_action = 'flag';
    f.injection_threshold = '0.8';
    expect(rulesPatch(f, safety).patch).toEqual({
      moderation: { output: false, actions: { violence: 'log' } },
      injection: { action: 'flag', threshold: 0.8 },
    });
  });

  it('knows which card has edits, even invalid ones', () => {
    const f = rulesForm(safety);
    expect(rulesDirty(f, safety)).toEqual({ moderation: false, injection: false });
    expect(rulesDirty({ ...f, threshold: '2' }, safety)).toEqual({ moderation: true, injection: false });
    expect(rulesDirty({ ...f, injection_action: 'log' }, safety)).toEqual({ moderation: false, injection: true });
    expect(rulesDirty({ ...f, actions: { ...f.actions, hate: 'log' } }, safety).moderation).toBe(true);
    // Choosing what a category already does by default is no edit.
    expect(rulesDirty({ ...f, actions: { ...f.actions, hate: 'block' } }, safety).moderation).toBe(false);
  });

  it('refuses thresholds outside (0, 1] and bad hold-backs', () => {
    const f = { ...rulesForm(safety), threshold: '0', injection_threshold: '1.5', stream_hold_back_chars: '-1' };
    const { patch, errors } = rulesPatch(f, safety);
    expect(patch).toEqual({});
    expect(Object.keys(errors).sort()).toEqual(['injection_threshold', 'stream_hold_back_chars', 'threshold']);
  });
});

describe('external moderators', () => {
  it('builds an OpenAI moderator, dropping empty optional fields', () => {
    const f = { ...moderatorForm(), name: ' oai ', url: 'https://api.openai.com/v1/moderations', api_key_env: 'OPENAI_KEY' };
    const { moderator, errors } = parseModerator(f, []);
    expect(errors).toEqual({});
    expect(moderator).toEqual({
      name: 'oai',
      kind: 'openai',
      url: 'https://api.openai.com/v1/moderations',
      api_key_env: 'OPENAI_KEY',
      model: null,
      timeout: '2s',
      fail: 'open',
    });
    expect(moderatorTarget(moderator!)).toBe('https://api.openai.com/v1/moderations');
  });

  it('asks Llama Guard for an upstream and a model, and names must be unique', () => {
    const f = { ...moderatorForm(), name: 'guard', kind: 'llama_guard' as const, timeout: 'soon' };
    expect(Object.keys(parseModerator(f, ['guard']).errors).sort()).toEqual(['model', 'name', 'timeout', 'upstream']);
    const ok = parseModerator({ ...f, upstream: 'ollama', model: 'llama-guard3', timeout: '3s', fail: 'closed' }, []);
    expect(ok.moderator).toMatchObject({ kind: 'llama_guard', upstream: 'ollama', fail: 'closed' });
    expect(moderatorTarget(ok.moderator!)).toBe('llama-guard3 on ollama');
    expect(moderatorForm(ok.moderator!).upstream).toBe('ollama');
  });
});

function scan(over: Partial<ScanResult>): ScanResult {
  return {
    decision: 'pass',
    refusal: null,
    checks: [],
    moderation: { enabled: true, threshold: 0.5, categories: [] },
    injection: { enabled: true, threshold: 0.5, action: 'block', score: 0, families: [], fired: null },
    ...over,
  };
}

describe('scan verdict', () => {
  it('quotes the refusal the client would get', () => {
    const v = verdict(
      scan({
        decision: 'block',
        refusal: { status: 400, body: { error: { message: 'refused: injection', type: 'invalid_request_error', code: 'prompt_injection_detected', param: null } } },
      }),
    );
    expect(v).toEqual({ tone: 'danger', title: 'Blocked', detail: 'refused: injection' });
  });

  it('names what fired when flagged or only logged', () => {
    const fired = { check: 'injection', stage: 'input', engine: 'rules', status: 'ran', fired: ['jailbreak_persona'], action: 'flag' };
    expect(verdict(scan({ decision: 'flag', checks: [fired] })).detail).toContain('Jailbreak persona');
    const logged = { ...fired, check: 'moderation', engine: 'builtin', fired: ['violence'], action: 'log' };
    expect(verdict(scan({ checks: [logged] }))).toMatchObject({ tone: 'success', detail: expect.stringContaining('Violence') });
    expect(verdict(scan({})).detail).toMatch(/Nothing reached/);
    const off = { check: 'injection', stage: 'input', engine: 'rules', status: 'skipped', reason: 'disabled', fired: [], action: 'none' };
    expect(verdict(scan({ checks: [off] })).detail).toMatch(/did not run/);
  });

  it('lists the checks that did not run and why', () => {
    const r = scan({
      checks: [
        { check: 'injection', stage: 'input', engine: 'rules', status: 'skipped', reason: 'disabled', fired: [], action: 'none' },
        { check: 'moderation', stage: 'input', engine: 'external:oai', status: 'skipped', reason: 'timed out after 2s', fired: [], action: 'none' },
      ],
    });
    expect(skippedChecks(r)).toEqual(['Injection detection: disabled', 'Moderation (external:oai): timed out after 2s']);
  });
});

describe("a key's own switches", () => {
  it('follows the settings unless told otherwise', () => {
    const f = keySafetyForm(null);
    expect(f).toEqual({ input_moderation: '', output_moderation: '', moderation_action: '', injection: '', injection_action: '' });
    expect(keySafety(f, null)).toBeNull();
  });

  it('round-trips switches and actions, keeping the threshold the form does not show', () => {
    const current = { injection: false, injection_threshold: 0.8, moderation_action: 'flag' as const };
    const f = keySafetyForm(current);
    expect(f).toMatchObject({ injection: 'off', moderation_action: 'flag', input_moderation: '' });
    expect(keySafety({ ...f, input_moderation: 'on' }, current)).toEqual({
      injection: false,
      injection_threshold: 0.8,
      moderation_action: 'flag',
      input_moderation: true,
    });
  });
});

describe('withModerator', () => {
  const m = (name: string, url = 'http://a/v1/moderations') =>
    ({ name, kind: 'openai', url }) as unknown as Parameters<typeof withModerator>[2];
  it('edits in place and keeps what others added meanwhile', () => {
    const fresh = [m('from-cli'), m('mine')];
    expect(withModerator(fresh, 'mine', m('mine', 'http://b')).map((x) => x.url)).toEqual([
      'http://a/v1/moderations',
      'http://b',
    ]);
    expect(withModerator(fresh, null, m('new')).map((x) => x.name)).toEqual(['from-cli', 'mine', 'new']);
  });
  it('adds back one removed elsewhere while it was being edited', () => {
    expect(withModerator([m('other')], 'gone', m('gone')).map((x) => x.name)).toEqual(['other', 'gone']);
  });
});
