// The gateway's settings and where it listens, shared by the header, the
// overview and the snippets.

import { ApiError, api, unwrap, type Schemas, type Settings, type SettingsView } from '../api/client';
import { gatewayBaseUrl } from '../format';

/** Deep partial, for JSON merge patches. */
export type MergePatch<T> = { [K in keyof T]?: T[K] extends object ? MergePatch<T[K]> : T[K] };

/** How often the sidebar's indicator asks whether the gateway is serving. */
export const HEALTH_EVERY_MS = 10_000;

/** What the sidebar's indicator says. */
export type Liveness = 'unknown' | 'running' | 'paused' | 'unreachable';

class GatewayStore {
  view = $state<SettingsView | null>(null);
  error = $state<unknown>(null);
  loading = $state(false);
  /** The last answer of `/admin/health`. */
  health = $state<Schemas['HealthView'] | null>(null);
  /** Whether the last health check got an answer at all. */
  reachable = $state<boolean | null>(null);

  liveness: Liveness = $derived(
    this.reachable === false
      ? 'unreachable'
      : this.health === null
        ? 'unknown'
        : this.health.serving
          ? 'running'
          : 'paused',
  );

  /**
   * Checks now and every HEALTH_EVERY_MS, while `active()` holds, until the
   * returned function is called. One check at a time, each bounded: a
   * gateway that accepts but never answers reads as not answering.
   */
  watchHealth(active: () => boolean = () => true): () => void {
    let pending = false;
    const check = async () => {
      if (pending || !active()) return;
      pending = true;
      try {
        this.health = unwrap(await api.GET('/admin/health', { signal: AbortSignal.timeout(HEALTH_EVERY_MS / 2) }));
        this.reachable = true;
      } catch (e) {
        // An error answer is still an answer (an ended session has its own
        // page), but says nothing about serving.
        this.reachable = e instanceof ApiError;
        this.health = null;
      } finally {
        pending = false;
      }
    };
    void check();
    const timer = setInterval(() => void check(), HEALTH_EVERY_MS);
    return () => clearInterval(timer);
  }

  /** `http://127.0.0.1:8787/v1` (https when the listener has TLS), or null before the settings arrive. */
  endpoint = $derived(
    gatewayBaseUrl(
      this.view?.listeners?.listen,
      typeof location !== 'undefined' ? location.hostname : 'localhost',
      !!this.view?.listeners?.tls_fingerprint_sha256,
    ),
  );

  async load(): Promise<void> {
    this.loading = true;
    try {
      this.view = unwrap(await api.GET('/admin/settings'));
      this.error = null;
    } catch (e) {
      this.error = e;
    } finally {
      this.loading = false;
    }
  }

  async patch(patch: MergePatch<Settings>): Promise<SettingsView> {
    const view = unwrap(
      await api.PATCH('/admin/settings', {
        // The document types the body as a bare object; it is a merge patch of `Settings`.
        body: patch as unknown as Record<string, never>,
      }),
    );
    this.view = view;
    return view;
  }
}

export const gateway = new GatewayStore();

/**
 * The merge patch that turns `before` into `after`: only changed leaves,
 * recursing into objects (arrays and scalars are replaced whole).
 */
export function mergePatch<T extends object>(before: T, after: T): MergePatch<T> {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(after) as (keyof T & string)[]) {
    const a = before[k] as unknown;
    const b = after[k] as unknown;
    if (isPlainObject(a) && isPlainObject(b)) {
      const sub = mergePatch(a, b);
      if (Object.keys(sub).length) out[k] = sub;
    } else if (JSON.stringify(a) !== JSON.stringify(b)) {
      out[k] = b;
    }
  }
  return out as MergePatch<T>;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
