// Imported first by main.ts, before any library reads the browser's language.
//
// WebKitGTK (the desktop app's webview) reports `navigator.language` as "C"
// when the system locale is C.UTF-8 (servers, containers, CI). `Intl` refuses
// that tag, and uPlot builds an `Intl.NumberFormat(navigator.language)` when
// its module loads, so the whole dashboard failed to start: a blank window.
// Name a language `Intl` accepts instead.

export function usableLanguage(tag: string | undefined): string {
  if (!tag) return 'en-US';
  try {
    return Intl.getCanonicalLocales(tag)[0] ?? 'en-US';
  } catch {
    return 'en-US';
  }
}

if (typeof navigator !== 'undefined') {
  const lang = usableLanguage(navigator.language);
  if (lang !== navigator.language) {
    Object.defineProperty(navigator, 'language', { value: lang, configurable: true });
    Object.defineProperty(navigator, 'languages', { value: [lang], configurable: true });
  }
}
