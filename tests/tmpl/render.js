// The mustache.js side of the differential Mustache test
// (tests/e2e/test_tmpl_diff.py; render.c is the Posthorn side).
//
//   node render.js CORPUS.json
//
// For each case of CORPUS (a JSON array of {"name", "template", "data"}),
// except those with "js": "skip", renders the template with mustache.js
// in HTML mode (its default escaping) and in TEXT mode (an escape function
// that only turns the value into a string), and prints one JSON line per
// case and mode:
//   {"name", "mode", "ok": true, "out": base64 of the UTF-8 bytes}
//   {"name", "mode", "ok": false, "message"}
'use strict';

const fs = require('fs');
const path = require('path');
const Mustache = require(path.join(__dirname, 'node_modules', 'mustache'));

const modes = {
  html: undefined,
  text: { escape: (value) => String(value) },
};

function renderOne(c, mode) {
  try {
    const out = Mustache.render(c.template, c.data === undefined ? {} : c.data, undefined, modes[mode]);
    return { name: c.name, mode, ok: true, out: Buffer.from(out, 'utf8').toString('base64') };
  } catch (e) {
    return { name: c.name, mode, ok: false, message: String(e && e.message) };
  }
}

const corpus = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const lines = [];
for (const c of corpus) {
  if (c.js === 'skip')
    continue;
  for (const mode of Object.keys(modes))
    lines.push(JSON.stringify(renderOne(c, mode)));
}
process.stdout.write(lines.join('\n') + '\n');
