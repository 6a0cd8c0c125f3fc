// The master key status from `/admin/crypto`, in the shapes the page shows.

export interface CryptoStatus {
  current_version: number;
  /** Version numbers, or objects describing each version. */
  versions: (number | { version: number; created_at?: string | number | null; [k: string]: unknown })[];
  /** Sealed records per version ("1": 120). */
  records_by_version: Record<string, number>;
  reencrypt_pending: number;
  /** A re-encryption pass is running. */
  reencrypting?: boolean;
  /** Bodies the last pass could not open (tampered); left as they are. */
  reencrypt_failed?: number;
  /** Where the key is kept (gateways since the OS secret store). */
  storage?: { kind: string; location: string; warning?: string | null };
}

const STORAGE_LABELS: Record<string, string> = {
  env: 'Environment variable',
  file: 'File',
  os_secret_store: 'OS secret store',
};

/** "File", "OS secret store"…; unknown kinds as they come. */
export function storageLabel(kind: string): string {
  return STORAGE_LABELS[kind] ?? kind;
}

export interface VersionRow {
  version: number;
  created_at: string | number | null;
  records: number;
}

/** One row per version, newest first, with the records it seals. */
export function versionList(s: CryptoStatus): VersionRow[] {
  const seen = new Map<number, VersionRow>();
  for (const v of s.versions ?? []) {
    const version = typeof v === 'number' ? v : Number(v.version);
    if (!Number.isFinite(version)) continue;
    const created = typeof v === 'number' ? null : (v.created_at ?? null);
    seen.set(version, { version, created_at: created, records: 0 });
  }
  for (const [k, n] of Object.entries(s.records_by_version ?? {})) {
    const version = Number(k);
    if (!Number.isFinite(version)) continue;
    const row = seen.get(version) ?? { version, created_at: null, records: 0 };
    row.records = n;
    seen.set(version, row);
  }
  if (!seen.has(s.current_version)) seen.set(s.current_version, { version: s.current_version, created_at: null, records: 0 });
  return [...seen.values()].sort((a, b) => b.version - a.version);
}

/** Records done / total for the re-encryption progress bar. */
export function cryptoProgress(s: CryptoStatus): { done: number; total: number; percent: number } {
  const total = Object.values(s.records_by_version ?? {}).reduce((a, b) => a + b, 0);
  const pending = Math.min(s.reencrypt_pending ?? 0, total);
  const done = total - pending;
  return { done, total, percent: total ? Math.round((done / total) * 100) : 100 };
}
