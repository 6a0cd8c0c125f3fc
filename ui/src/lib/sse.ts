// Server-sent events over `fetch` with a streaming reader. EventSource cannot
// send an Authorization header (the desktop app authenticates with a bearer
// token), so the admin event stream is read by hand: parse, dispatch, and
// reconnect with backoff when the server drops a slow consumer.

import { adminFetch, errorFromBody, isMissingRoute } from './api/client';

export interface SseEvent {
  event: string;
  data: string;
  id?: string;
}

/**
 * Incremental parser for the `text/event-stream` format: feed it decoded
 * text as it arrives; it returns the events completed by that text.
 */
export class SseParser {
  #buf = '';
  #event = '';
  #data: string[] = [];
  #id: string | undefined;

  push(chunk: string): SseEvent[] {
    this.#buf += chunk;
    const out: SseEvent[] = [];
    let start = 0;
    for (;;) {
      const nl = this.#buf.indexOf('\n', start);
      if (nl < 0) break;
      let line = this.#buf.slice(start, nl);
      start = nl + 1;
      if (line.endsWith('\r')) line = line.slice(0, -1);
      if (line === '') {
        if (this.#data.length) {
          out.push({ event: this.#event || 'message', data: this.#data.join('\n'), id: this.#id });
        }
        this.#event = '';
        this.#data = [];
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') this.#event = value;
      else if (field === 'data') this.#data.push(value);
      else if (field === 'id') this.#id = value;
    }
    this.#buf = this.#buf.slice(start);
    return out;
  }
}

/** Delay before reconnect attempt `n` (0-based): 1 s, 2 s, 4 s … capped at 30 s, with jitter. */
export function backoffMs(n: number, random: () => number = Math.random): number {
  const base = Math.min(30_000, 1000 * 2 ** Math.min(n, 5));
  return Math.round(base * (0.75 + random() * 0.5));
}

export type StreamState = 'connecting' | 'open' | 'reconnecting' | 'unavailable' | 'closed';

export interface StreamOptions {
  onevent: (e: SseEvent) => void;
  onstate?: (s: StreamState, detail?: string) => void;
}

/**
 * Keeps one admin event stream open until `close()`. A 404 means the gateway
 * has no such stream (state `unavailable`, no retry); any other failure or
 * end of stream reconnects with backoff.
 */
export class AdminEventStream {
  #path: string;
  #opts: StreamOptions;
  #abort: AbortController | null = null;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #attempt = 0;
  #closed = false;

  constructor(path: string, opts: StreamOptions) {
    this.#path = path;
    this.#opts = opts;
  }

  start(): void {
    this.#closed = false;
    void this.#run();
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#abort?.abort();
    this.#abort = null;
    this.#opts.onstate?.('closed');
  }

  async #run(): Promise<void> {
    if (this.#closed) return;
    this.#opts.onstate?.(this.#attempt === 0 ? 'connecting' : 'reconnecting');
    const abort = new AbortController();
    this.#abort = abort;
    let detail: string | undefined;
    try {
      const res = await adminFetch(this.#path, {
        headers: { Accept: 'text/event-stream' },
        signal: abort.signal,
        cache: 'no-store',
      });
      if (isMissingRoute(res)) {
        void res.body?.cancel().catch(() => {});
        this.#opts.onstate?.('unavailable');
        return;
      }
      if (!res.ok || !res.body) {
        let body: unknown = null;
        try {
          body = await res.json();
        } catch {
          // not JSON
        }
        throw errorFromBody(res.status, body, res.statusText);
      }
      this.#opts.onstate?.('open');
      this.#attempt = 0;
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      const parser = new SseParser();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const e of parser.push(value)) this.#opts.onevent(e);
      }
      detail = 'The gateway closed the stream.';
    } catch (e) {
      if (this.#closed) return;
      detail = e instanceof Error ? e.message : String(e);
    }
    if (this.#closed) return;
    const wait = backoffMs(this.#attempt++);
    this.#opts.onstate?.('reconnecting', detail);
    this.#timer = setTimeout(() => void this.#run(), wait);
  }
}
