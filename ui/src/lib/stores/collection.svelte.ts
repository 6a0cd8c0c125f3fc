// The scaffolding every list page shares: a collection loaded from the admin
// API, its load error, in-place updates after a change, and the item a
// confirmation dialog is asking about.

export class Collection<T> {
  items = $state<T[] | null>(null);
  error = $state<unknown>(null);
  loading = $state(false);

  readonly #fetch: () => Promise<T[]>;
  readonly #id: (item: T) => string;

  constructor(fetchAll: () => Promise<T[]>, idOf: (item: T) => string) {
    this.#fetch = fetchAll;
    this.#id = idOf;
  }

  async load(): Promise<void> {
    this.loading = true;
    try {
      this.items = await this.#fetch();
      this.error = null;
    } catch (e) {
      this.error = e;
    } finally {
      this.loading = false;
    }
  }

  /** Inserts or replaces an item (matched by id). */
  put(item: T): void {
    const list = this.items ?? [];
    const id = this.#id(item);
    const i = list.findIndex((x) => this.#id(x) === id);
    this.items = i < 0 ? [...list, item] : list.map((x) => (this.#id(x) === id ? item : x));
  }

  /** Removes an item by id. */
  drop(id: string): void {
    this.items = (this.items ?? []).filter((x) => this.#id(x) !== id);
  }
}

/** The item a confirmation dialog is about, and whether it is open. */
export class Confirm<T> {
  target = $state<T | null>(null);
  open = $state(false);

  ask(item: T): void {
    this.target = item;
    this.open = true;
  }
}
