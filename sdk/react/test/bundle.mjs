// Bundles test/page.jsx (React, react-dom and this package's dist/) into one script for the
// Chromium test, with esbuild's JS API (whether or not npm ran esbuild's install script).
// Usage: node test/bundle.mjs <outfile>
import { build } from 'esbuild';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const outfile = process.argv[2];
if (!outfile) throw new Error('usage: node test/bundle.mjs <outfile>');
await build({
  entryPoints: [join(dirname(fileURLToPath(import.meta.url)), 'page.jsx')],
  bundle: true,
  format: 'esm',
  jsx: 'automatic',
  define: { 'process.env.NODE_ENV': '"development"' },
  logLevel: 'warning',
  outfile,
});
