/**
 * The admin panel's build: web/ -> dist/web, served by Paygate at /admin (src/http/admin-routes.ts).
 * Hashed file names under assets/ let the server cache them for a year; index.html is never cached.
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

const here = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root: here,
  base: '/admin/',
  plugins: [react()],
  build: {
    outDir: fileURLToPath(new URL('../dist/web', import.meta.url)),
    emptyOutDir: true,
    assetsDir: 'assets',
    // Keep every asset a file: the CSP allows no inline data for scripts or styles.
    assetsInlineLimit: 0,
    sourcemap: false,
    target: 'es2022',
  },
  server: {
    // `npx vite --config web/vite.config.ts` during development, with Paygate on :8080.
    proxy: { '/v1': 'http://127.0.0.1:8080' },
  },
});
