// Ready-to-paste client snippets for a key and this gateway's endpoint.

export type SnippetLang = 'curl' | 'python' | 'javascript';

export interface SnippetInput {
  baseUrl: string;
  apiKey: string;
  model: string;
}

export const SNIPPET_LABELS: Record<SnippetLang, string> = {
  curl: 'curl',
  python: 'Python',
  javascript: 'JavaScript',
};

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export function snippet(lang: SnippetLang, { baseUrl, apiKey, model }: SnippetInput): string {
  const base = baseUrl.replace(/\/+$/, '');
  switch (lang) {
    case 'curl': {
      const body = JSON.stringify({ model, messages: [{ role: 'user', content: 'Hello!' }] });
      const auth = apiKey.startsWith('$') ? `"Authorization: Bearer ${apiKey}"` : shellQuote(`Authorization: Bearer ${apiKey}`);
      return [
        `curl ${base}/chat/completions \\`,
        `  -H ${auth} \\`,
        `  -H 'Content-Type: application/json' \\`,
        `  -d ${shellQuote(body)}`,
      ].join('\n');
    }
    case 'python':
      return [
        'from openai import OpenAI',
        '',
        'client = OpenAI(',
        `    base_url=${JSON.stringify(base)},`,
        `    api_key=${JSON.stringify(apiKey)},`,
        ')',
        '',
        'reply = client.chat.completions.create(',
        `    model=${JSON.stringify(model)},`,
        '    messages=[{"role": "user", "content": "Hello!"}],',
        ')',
        'print(reply.choices[0].message.content)',
      ].join('\n');
    case 'javascript':
      return [
        "import OpenAI from 'openai';",
        '',
        'const client = new OpenAI({',
        `  baseURL: ${jsString(base)},`,
        `  apiKey: ${jsString(apiKey)},`,
        '});',
        '',
        'const reply = await client.chat.completions.create({',
        `  model: ${jsString(model)},`,
        "  messages: [{ role: 'user', content: 'Hello!' }],",
        '});',
        'console.log(reply.choices[0].message.content);',
      ].join('\n');
  }
}

function jsString(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}
