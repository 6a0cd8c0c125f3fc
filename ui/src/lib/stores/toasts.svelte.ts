// Transient feedback in the corner: successes fade, errors stay longer.

export type ToastKind = 'success' | 'error' | 'info';

export interface Toast {
  id: number;
  kind: ToastKind;
  title: string;
  detail?: string;
}

export const TOAST_MS: Record<ToastKind, number> = { success: 4000, info: 5000, error: 8000 };
const MAX_TOASTS = 4;

export class ToastStore {
  items = $state<Toast[]>([]);
  #next = 1;
  #timers = new Map<number, ReturnType<typeof setTimeout>>();

  push(kind: ToastKind, title: string, detail?: string): number {
    const id = this.#next++;
    this.items = [...this.items, { id, kind, title, detail }].slice(-MAX_TOASTS);
    this.#timers.set(
      id,
      setTimeout(() => this.dismiss(id), TOAST_MS[kind]),
    );
    return id;
  }

  success(title: string, detail?: string): number {
    return this.push('success', title, detail);
  }

  error(title: string, detail?: string): number {
    return this.push('error', title, detail);
  }

  info(title: string, detail?: string): number {
    return this.push('info', title, detail);
  }

  dismiss(id: number): void {
    clearTimeout(this.#timers.get(id));
    this.#timers.delete(id);
    this.items = this.items.filter((t) => t.id !== id);
  }

  /** Keeps a toast while the pointer or focus is on it. */
  hold(id: number): void {
    clearTimeout(this.#timers.get(id));
    this.#timers.delete(id);
  }

  release(id: number): void {
    const t = this.items.find((x) => x.id === id);
    if (!t || this.#timers.has(id)) return;
    this.#timers.set(
      id,
      setTimeout(() => this.dismiss(id), TOAST_MS[t.kind] / 2),
    );
  }
}

export const toasts = new ToastStore();
