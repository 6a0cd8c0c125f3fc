// Keyboard focus after the element that had it went away.

/**
 * Puts focus on the page's main region when it was lost (the element that
 * had it was removed: a revoked key's row buttons, a deleted upstream's),
 * so keyboard users go on from the page instead of the document's start.
 */
export function keepFocus(): void {
  const active = document.activeElement;
  if (!active || active === document.body) document.getElementById('main')?.focus();
}
