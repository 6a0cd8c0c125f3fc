import { describe, expect, it } from 'vitest';
import { snippet } from '../lib/snippets';

const input = { baseUrl: 'http://127.0.0.1:8787/v1/', apiKey: 'ask_SECRET', model: 'assisters-echo' };

describe('snippet', () => {
  it('curl posts to chat/completions with the key', () => {
    const s = snippet('curl', input);
    expect(s).toContain('curl http://127.0.0.1:8787/v1/chat/completions');
    expect(s).toContain("'Authorization: Bearer ask_SECRET'");
    expect(s).toContain('"model":"assisters-echo"');
  });
  it('curl leaves an environment variable to the shell', () => {
    expect(snippet('curl', { ...input, apiKey: '$ASSISTERS_KEY' })).toContain('"Authorization: Bearer $ASSISTERS_KEY"');
  });
  it('quotes single quotes for the shell', () => {
    expect(snippet('curl', { ...input, model: "it's" })).toContain(`it'\\''s`);
  });
  it('Python uses the openai package with base_url', () => {
    const s = snippet('python', input);
    expect(s).toContain('from openai import OpenAI');
    expect(s).toContain('base_url="http://127.0.0.1:8787/v1"');
    expect(s).toContain('api_key="ask_SECRET"');
    expect(s).toContain('model="assisters-echo"');
  });
  it('JavaScript uses the openai package with baseURL', () => {
    const s = snippet('javascript', input);
    expect(s).toContain("import OpenAI from 'openai';");
    expect(s).toContain("baseURL: 'http://127.0.0.1:8787/v1'");
    expect(s).toContain("apiKey: 'ask_SECRET'");
  });
});
