// Client-side routing over the History API: the admin listener answers
// index.html for any path without a dot, so /keys can be reloaded.

export interface NavItem {
  path: string;
  label: string;
}

class Router {
  path = $state(typeof location !== 'undefined' ? normalize(location.pathname) : '/');
  /** The query string of the current page ("?key_id=…" or ""). */
  search = $state(typeof location !== 'undefined' ? location.search : '');

  constructor() {
    if (typeof window !== 'undefined') {
      window.addEventListener('popstate', () => {
        this.search = location.search;
        this.path = normalize(location.pathname);
      });
    }
  }

  navigate(to: string, { replace = false } = {}): void {
    const path = normalize(to);
    const q = to.indexOf('?');
    const search = q < 0 ? '' : to.slice(q).split('#')[0];
    if (path === this.path && search === location.search) return;
    if (replace) history.replaceState(null, '', path + search);
    else history.pushState(null, '', path + search);
    this.search = search;
    this.path = path;
    window.scrollTo(0, 0);
  }
}

/** "/keys/" → "/keys"; "" → "/". */
export function normalize(path: string): string {
  const p = path.split(/[?#]/)[0].replace(/\/+$/, '');
  return p === '' ? '/' : p.startsWith('/') ? p : `/${p}`;
}

/** Whether a click should be left to the browser (new tab, download…). */
export function isModifiedClick(e: MouseEvent): boolean {
  return e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey;
}

export const router = new Router();

/** `use:link` on an <a href="/keys">: navigates without reloading. */
export function link(node: HTMLAnchorElement) {
  const onclick = (e: MouseEvent) => {
    if (isModifiedClick(e) || node.target || node.origin !== location.origin) return;
    e.preventDefault();
    router.navigate(node.pathname + node.search);
  };
  node.addEventListener('click', onclick);
  return { destroy: () => node.removeEventListener('click', onclick) };
}
