import { defineConfig } from 'vitest/config';
import { svelte } from '@sveltejs/vite-plugin-svelte';

// The admin listener serves dist/ same-origin; `npm run dev` proxies the
// admin API (and the one-time /login link) to a running gateway.
const admin = process.env.ASSISTERS_ADMIN ?? 'http://127.0.0.1:8788';

export default defineConfig({
  plugins: [svelte()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    reportCompressedSize: true,
  },
  server: {
    proxy: {
      '/admin': { target: admin, changeOrigin: false },
      '/login': { target: admin, changeOrigin: false },
    },
  },
  resolve: process.env.VITEST ? { conditions: ['browser'] } : undefined,
  test: {
    environment: 'jsdom',
    include: ['src/**/*.test.ts'],
  },
});
