import { describe, expect, it } from 'vitest';
import { usableLanguage } from '../lib/locale';

describe('usableLanguage', () => {
  it('keeps real language tags', () => {
    expect(usableLanguage('fr-FR')).toBe('fr-FR');
    expect(usableLanguage('en-us')).toBe('en-US');
  });
  it('replaces what Intl refuses (WebKitGTK in the C locale says "C")', () => {
    expect(() => new Intl.NumberFormat('C')).toThrow(RangeError);
    expect(usableLanguage('C')).toBe('en-US');
    expect(usableLanguage('')).toBe('en-US');
    expect(usableLanguage(undefined)).toBe('en-US');
    expect(() => new Intl.NumberFormat(usableLanguage('C'))).not.toThrow();
  });
});
