// The admin API client: typed from the generated OpenAPI schema, same-origin
// with the session cookie by default, with one hook for the desktop app to
// inject a bearer token instead.

import createClient, { type Middleware } from 'openapi-fetch';
import type { components, paths } from './schema';

export type Schemas = components['schemas'];
export type KeyView = Schemas['KeyView'];
export type CreatedKey = Schemas['CreatedKey'];
export type CreateKey = Schemas['CreateKey'];
export type UpdateKey = Schemas['UpdateKey'];
export type Environment = Schemas['Environment'];
export type KeyStatus = Schemas['KeyStatus'];
export type UpstreamView = Schemas['UpstreamView'];
export type CreateUpstream = Schemas['CreateUpstream'];
export type UpdateUpstream = Schemas['UpdateUpstream'];
export type TestResult = Schemas['TestResult'];
export type SettingsView = Schemas['SettingsView'];
export type Settings = Schemas['Settings'];
export type AuditEntry = Schemas['AuditEntry'];
export type Verification = Schemas['Verification'];
export type ErrorDetail = Schemas['ErrorDetail'];
export type Tier = Schemas['Tier'];
export type UpdateTier = Schemas['UpdateTier'];
export type Overrides = Schemas['Overrides'];
export type Rotated = Schemas['Rotated'];
export type AccessConfig = Schemas['AccessConfig'];
export type LogView = Schemas['LogView'];
export type LogPage = Schemas['LogPage'];
export type LogBody = Schemas['LogBody'];
export type LogsConfig = Schemas['LogsConfig'];
export type SafetyConfig = Schemas['SafetyConfig'];
export type KeySafety = Schemas['KeySafety'];
export type ModerationConfig = Schemas['ModerationConfig'];
export type InjectionConfig = Schemas['InjectionConfig'];
export type ExternalModerator = Schemas['ExternalModerator'];
export type SafetyAction = Schemas['Action'];
export type Category = Schemas['Category'];
export type ScanResult = Schemas['ScanResult'];
export type SafetyCheck = Schemas['Check'];
export type StatusView = Schemas['StatusView'];
export type StatusComponent = Schemas['Component'];
export type ComponentStatus = Schemas['ComponentStatus'];
export type Incident = Schemas['Incident'];
export type IncidentStatus = Schemas['IncidentStatus'];
export type Impact = Schemas['Impact'];
export type Maintenance = Schemas['Maintenance'];
export type MaintenanceStatus = Schemas['MaintenanceStatus'];
export type Subscriber = Schemas['Subscriber'];
export type CreatedSubscriber = Schemas['CreatedSubscriber'];
export type TlsView = Schemas['TlsView'];
export type RotatedToken = Schemas['RotatedToken'];

/** An admin call that failed; `message` is the server's own words. */
export class ApiError extends Error {
  readonly status: number;
  readonly type: string;
  readonly code: string | null;
  readonly param: string | null;

  constructor(status: number, detail: Partial<ErrorDetail> & { message: string }) {
    super(detail.message);
    this.name = 'ApiError';
    this.status = status;
    this.type = detail.type ?? 'error';
    this.code = detail.code ?? null;
    this.param = detail.param ?? null;
  }
}

/** Reads the OpenAI-shaped error body, falling back to a plain description. */
export function errorFromBody(status: number, body: unknown, statusText = ''): ApiError {
  const detail = (body as { error?: Partial<ErrorDetail> } | null)?.error;
  if (detail && typeof detail.message === 'string' && detail.message) {
    return new ApiError(status, detail as ErrorDetail);
  }
  const text = typeof body === 'string' && body.trim() ? body.trim().slice(0, 300) : '';
  return new ApiError(status, {
    message: text || `The gateway answered ${status}${statusText ? ` ${statusText}` : ''}.`,
    type: 'http_error',
  });
}

/** A message for anything thrown by an admin call. */
export function messageOf(e: unknown): string {
  if (e instanceof ApiError) return e.message;
  if (e instanceof TypeError) return 'Cannot reach the gateway. Is it still running?';
  if (e instanceof Error) return e.message;
  return String(e);
}

// ---------------------------------------------------------------------------
// Authentication hook

/** How admin calls authenticate when not by the dashboard's session cookie. */
export interface AdminAuth {
  /** Sent as `Authorization: Bearer <token>`. */
  token: string;
  /** Where the admin API lives when the page is not served by it (desktop app). */
  baseUrl?: string;
}

type AuthProvider = () => Promise<AdminAuth | null>;

interface TauriInternals {
  invoke: (cmd: string, args?: Record<string, unknown>) => Promise<unknown>;
}

/**
 * The desktop app (Tauri) hands the dashboard the admin token through the
 * `admin_session` command, answering either the token as a string or
 * `{ token, base_url }`. In a browser there is no such bridge and the session
 * cookie is used.
 */
export const tauriAdminSession: AuthProvider = async () => {
  const tauri = (globalThis as { __TAURI_INTERNALS__?: TauriInternals }).__TAURI_INTERNALS__;
  if (!tauri?.invoke) return null;
  const answer = await tauri.invoke('admin_session');
  if (typeof answer === 'string') return { token: answer };
  const a = answer as { token?: string; base_url?: string } | null;
  return a?.token ? { token: a.token, baseUrl: a.base_url } : null;
};

let authProvider: AuthProvider = tauriAdminSession;
let authPromise: Promise<AdminAuth | null> | null = null;

/** Replaces how the bearer token is obtained (tests, other shells). */
export function setAdminAuthProvider(provider: AuthProvider): void {
  authProvider = provider;
  authPromise = null;
}

/**
 * Forgets the bearer token obtained so far: after the admin token is
 * rotated, the desktop app's next call asks the shell again (it reads the
 * token file each time).
 */
export function resetAdminAuth(): void {
  authPromise = null;
}

function adminAuth(): Promise<AdminAuth | null> {
  authPromise ??= authProvider().catch(() => null);
  return authPromise;
}

// ---------------------------------------------------------------------------
// Session expiry

type Listener = () => void;
const unauthorizedListeners = new Set<Listener>();

/** Called whenever an admin call answers 401. */
export function onUnauthorized(fn: Listener): () => void {
  unauthorizedListeners.add(fn);
  return () => unauthorizedListeners.delete(fn);
}

// ---------------------------------------------------------------------------
// The client

/**
 * After a 401 with a token from the provider (the desktop app), the token
 * may have been rotated since it was read (the CLI, another window): ask
 * the provider again. The new auth, or null when nothing changed.
 */
async function reauthorize(used: AdminAuth | null): Promise<AdminAuth | null> {
  if (!used) return null;
  resetAdminAuth();
  const fresh = await adminAuth();
  return fresh && fresh.token !== used.token ? fresh : null;
}

/** A request as sent with `auth`: its URL on the auth's base, its bearer token. */
function authorized(url: string, init: RequestInit, auth: AdminAuth): [string, RequestInit] {
  const src = new URL(url);
  const target = auth.baseUrl ? new URL(src.pathname + src.search, auth.baseUrl).toString() : url;
  const headers = new Headers(init.headers);
  headers.set('Authorization', `Bearer ${auth.token}`);
  return [target, { ...init, headers }];
}

// What each request was sent with, to send it again after a rotation.
const sent = new WeakMap<Request, { auth: AdminAuth; url: string; init: RequestInit }>();

const middleware: Middleware = {
  async onRequest({ request }) {
    const auth = await adminAuth();
    if (!auth) return request;
    // A buffered body: WebKit (the desktop app's webview) cannot send a
    // ReadableStream, which is what `new Request(url, request)` would pass on.
    const body = request.method === 'GET' || request.method === 'HEAD' ? undefined : await request.arrayBuffer();
    const init: RequestInit = { method: request.method, headers: request.headers, body, signal: request.signal };
    const [url, withAuth] = authorized(request.url, init, auth);
    const out = new Request(url, withAuth);
    sent.set(out, { auth, url: request.url, init });
    return out;
  },
  async onResponse({ request, response }) {
    let res = response;
    const was = sent.get(request);
    if (res.status === 401 && was) {
      const fresh = await reauthorize(was.auth);
      // A 401 is refused before anything runs, so sending again is safe.
      if (fresh) res = await fetch(...authorized(was.url, was.init, fresh));
    }
    if (res.status === 401) unauthorizedListeners.forEach((fn) => fn());
    return res;
  },
};

function origin(): string {
  return typeof location !== 'undefined' ? location.origin : 'http://localhost';
}

export const api = createClient<paths>({
  baseUrl: origin(),
  credentials: 'same-origin',
  headers: { Accept: 'application/json' },
});
api.use(middleware);

/** Turns an openapi-fetch result into its data, or throws an ApiError. */
export function unwrap<T>(r: { data?: T; error?: unknown; response: Response }): T {
  if (r.response.ok) return r.data as T;
  throw errorFromBody(r.response.status, r.error, r.response.statusText);
}

/**
 * A raw admin call with the same authentication as `api` (session cookie, or
 * the desktop app's bearer token and base URL): for what openapi-fetch does
 * not handle, the event stream and file downloads.
 */
export async function adminFetch(path: string, init: RequestInit = {}): Promise<Response> {
  const send = (auth: AdminAuth | null) => {
    const url = new URL(path, origin()).toString();
    const base: RequestInit = { credentials: 'same-origin', ...init };
    return auth ? fetch(...authorized(url, base, auth)) : fetch(url, { ...base, headers: new Headers(init.headers) });
  };
  const auth = await adminAuth();
  let res = await send(auth);
  if (res.status === 401) {
    const fresh = await reauthorize(auth);
    if (fresh) res = await send(fresh);
  }
  if (res.status === 401) unauthorizedListeners.forEach((fn) => fn());
  return res;
}

/** Whether the dashboard runs inside the desktop app (which provides the session). */
export function inDesktopApp(): boolean {
  return !!(globalThis as { __TAURI_INTERNALS__?: unknown }).__TAURI_INTERNALS__;
}

/**
 * Whether an admin route does not exist in this gateway: a 404, or the
 * dashboard's own HTML shell (which older gateways answer for any unknown
 * GET path without a dot, /admin/… included).
 */
export function isMissingRoute(res: Response): boolean {
  if (res.status === 404) return true;
  return res.ok && (res.headers.get('content-type') ?? '').includes('text/html');
}

let openapiDoc: Promise<Record<string, unknown> | null> | null = null;

/**
 * Whether this gateway's admin API has a route (and optionally a query
 * parameter), read once from its OpenAPI document: pages offer a control
 * only when the gateway understands it (an unknown query parameter would be
 * silently ignored).
 */
export async function apiSupports(path: string, method: string, param?: string): Promise<boolean> {
  openapiDoc ??= adminFetch('/admin/openapi.json', { headers: { Accept: 'application/json' } })
    .then((r) => (r.ok ? (r.json() as Promise<Record<string, unknown>>) : null))
    .catch(() => null);
  const doc = await openapiDoc;
  const op = (doc?.paths as Record<string, Record<string, { parameters?: { name: string }[] }>> | undefined)?.[path]?.[
    method.toLowerCase()
  ];
  if (!op) return false;
  return param ? !!op.parameters?.some((p) => p.name === param) : true;
}
