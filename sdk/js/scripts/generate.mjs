// Regenerates src/generated/openapi.ts from openapi/openapi.json with the openapi-typescript CLI,
// or with --check fails when the committed file differs from what it would generate (drift test).
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cli = join(root, 'node_modules', 'openapi-typescript', 'bin', 'cli.js');
const spec = join(root, '..', '..', 'openapi', 'openapi.json');
const target = join(root, 'src', 'generated', 'openapi.ts');

let text;
try {
  // Printed to stdout (no -o), so the check never writes the file it compares.
  text = execFileSync(process.execPath, [cli, spec], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
} catch (e) {
  process.exit(e.status ?? 1);
}
if (process.argv.includes('--check')) {
  if (readFileSync(target, 'utf8') !== text) {
    console.error('sdk/js/src/generated/openapi.ts is stale: run `npm run generate` in sdk/js and commit it.');
    process.exit(1);
  }
  console.log('sdk/js/src/generated/openapi.ts matches openapi/openapi.json');
} else {
  writeFileSync(target, text);
}
