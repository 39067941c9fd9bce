// Bundles the dashboard: src/ and the pinned npm packages into OUT (dist/
// by default; make check-web builds into build/web-check and compares).
// The output is a pure function of the sources and the pinned esbuild:
// no timestamps, no absolute paths, no source maps.
//   node build.mjs [OUT]
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as esbuild from 'esbuild';

const out = process.argv[2] || 'dist';
// The packages that end up in the bundle: their licences go beside it.
const BUNDLED = ['preact', 'htm', 'uplot'];

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

await esbuild.build({
  entryPoints: { app: 'src/main.js' },
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['es2020'],
  outdir: out,
  charset: 'utf8',
  legalComments: 'none',
  logLevel: 'warning',
});

for (const f of ['index.html', 'icon.svg'])
  copyFileSync(join('src', f), join(out, f));

const licences = BUNDLED.map((name) => {
  const pkg = JSON.parse(readFileSync(join('node_modules', name, 'package.json'), 'utf8'));
  const text = readFileSync(join('node_modules', name, 'LICENSE'), 'utf8').trim();
  return `${name} ${pkg.version} (${pkg.license})\n\n${text}\n`;
});
writeFileSync(join(out, 'licenses.txt'),
  'The Posthorn dashboard bundles these packages (from npm, pinned in web/package-lock.json):\n\n' +
  licences.join('\n----------------------------------------------------------------------\n\n'));
