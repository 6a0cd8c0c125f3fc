// The admin event stream, shared by whoever shows live traffic. Events are
// aggregated in plain (non-reactive) structures; the reactive snapshot is
// refreshed once a second (on each tick, or by a timer when ticks stop), so
// 1,000 requests/s cost a few counters, not 1,000 renders.

import { AdminEventStream, type StreamState } from '../sse';
import {
  HISTORY_SECONDS,
  RecentBuffer,
  TickHistory,
  TopCounter,
  totalTokens,
  isFailure,
  type RequestEvent,
  type TickEvent,
  type TopEntry,
} from '../live';

export const RECENT_ROWS = 15;
const FLUSH_MS = 1000;

export class LiveStore {
  state = $state<StreamState>('closed');
  detail = $state<string | null>(null);
  /** Newest first, at most RECENT_ROWS. */
  recent = $state.raw<RequestEvent[]>([]);
  /** Bumped on every flush; charts redraw when it changes. */
  version = $state(0);
  topKeys = $state.raw<TopEntry[]>([]);
  topModels = $state.raw<TopEntry[]>([]);
  /** The window the top lists cover, in seconds. */
  windowSeconds = $state(300);
  /** Request events seen since the page opened. */
  seen = $state(0);

  readonly ticks = new TickHistory();
  #recent = new RecentBuffer<RequestEvent>(RECENT_ROWS);
  #keys = new TopCounter();
  #models = new TopCounter();
  #dirty = false;
  #lastFlush = 0;
  #seen = 0;
  #stream: AdminEventStream | null = null;
  #timer: ReturnType<typeof setInterval> | null = null;
  #users = 0;

  /** Starts the stream for one more user; returns the release function. */
  acquire(): () => void {
    this.#users++;
    if (this.#users === 1) this.#start();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#users--;
      if (this.#users === 0) this.#stop();
    };
  }

  setWindow(seconds: number): void {
    this.windowSeconds = seconds;
    this.#dirty = true;
    this.flush();
  }

  /** Feeds one event (exposed for tests). */
  handle(event: string, data: string): void {
    if (event === 'tick') {
      let t: TickEvent;
      try {
        t = JSON.parse(data) as TickEvent;
      } catch {
        return;
      }
      this.ticks.push(t);
      this.#keys.prune(t.at);
      this.#models.prune(t.at);
      this.#dirty = true;
      // The history replayed on connect is flushed once, by the timer.
      if (t.at >= Date.now() / 1000 - 3) this.flush();
    } else if (event === 'lagged') {
      // The gateway drops a consumer that falls behind; the stream reconnects.
      this.detail = 'This page fell behind the event stream; reconnecting.';
    } else if (event === 'request') {
      let r: RequestEvent;
      try {
        r = JSON.parse(data) as RequestEvent;
      } catch {
        return;
      }
      this.#recent.push(r);
      const isError = isFailure(r);
      const tokens = totalTokens(r) ?? 0;
      this.#keys.add(r.at, r.key_id ?? '', isError, tokens);
      if (r.model) this.#models.add(r.at, r.model, isError, tokens);
      this.#seen++;
      this.#dirty = true;
    }
  }

  /** Copies the aggregates into the reactive state, if anything changed. */
  flush(): void {
    if (!this.#dirty) return;
    this.#dirty = false;
    this.#lastFlush = Date.now();
    const now = this.ticks.latest?.at ?? Math.floor(Date.now() / 1000);
    this.recent = this.#recent.snapshot();
    this.topKeys = this.#keys.top(now, this.windowSeconds);
    this.topModels = this.#models.top(now, this.windowSeconds);
    this.seen = this.#seen;
    this.version++;
  }

  #start(): void {
    // The last hour of ticks comes first, so the charts are full at once.
    this.#stream = new AdminEventStream(`/admin/events?history=${HISTORY_SECONDS}`, {
      onevent: (e) => this.handle(e.event, e.data),
      onstate: (s, detail) => {
        this.state = s;
        this.detail = detail ?? null;
      },
    });
    this.#stream.start();
    // Only when the ticks stopped (or replayed history is waiting).
    this.#timer = setInterval(() => {
      if (Date.now() - this.#lastFlush >= FLUSH_MS - 50) this.flush();
    }, FLUSH_MS);
  }

  #stop(): void {
    this.#stream?.close();
    this.#stream = null;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }
}

export const live = new LiveStore();
