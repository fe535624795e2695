// Regenerates src/generated/openapi.ts from openapi/openapi.json with the openapi-typescript CLI,
// or with --check fails when the committed file differs from what it would generate (drift test).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cli = join(root, 'node_modules', 'openapi-typescript', 'bin', 'cli.js');
const spec = join(root, '..', '..', 'openapi', 'openapi.json');
const target = join(root, 'src', 'generated', 'openapi.ts');

// The passthrough documents five methods under one operationId (`relay`), which OpenAPI forbids
// and which would make `operations` declare `relay` five times: such ids get the method appended.
const doc = JSON.parse(readFileSync(spec, 'utf8'));
const ops = Object.values(doc.paths).flatMap((item) => Object.entries(item).filter(([, op]) => op?.operationId));
const seen = new Map();
for (const [, op] of ops) seen.set(op.operationId, (seen.get(op.operationId) ?? 0) + 1);
for (const [method, op] of ops) {
  if (seen.get(op.operationId) > 1) op.operationId += method[0].toUpperCase() + method.slice(1);
}
const dir = mkdtempSync(join(tmpdir(), 'relay-sdk-'));
const unique = join(dir, 'openapi.json');
writeFileSync(unique, JSON.stringify(doc));
let text;
try {
  // Printed to stdout (no -o), so the check never writes the file it compares.
  text = execFileSync(process.execPath, [cli, unique], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
} finally {
  rmSync(dir, { recursive: true, force: true });
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
