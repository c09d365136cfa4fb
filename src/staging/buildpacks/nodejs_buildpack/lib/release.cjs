'use strict';
// Start command: Procfile web, else `npm start` when scripts.start exists, else node <main|server.js|index.js>.
const fs = require('node:fs');
const path = require('node:path');

function procfileWeb(dir) {
  if (!fs.existsSync(path.join(dir, 'Procfile'))) return null;
  let web = null;
  for (const line of fs.readFileSync(path.join(dir, 'Procfile'), 'utf8').split(/\r?\n/)) {
    const m = /^\s*web\s*:\s*(.+?)\s*$/.exec(line);
    if (m) web = m[1];
  }
  return web;
}

function command(dir) {
  const exists = (p) => fs.existsSync(path.join(dir, p));
  const fromProcfile = procfileWeb(dir);
  if (fromProcfile) return fromProcfile;
  let pkg = {};
  try {
    pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  } catch {
    pkg = {};
  }
  if (pkg.scripts && typeof pkg.scripts.start === 'string' && pkg.scripts.start.trim() !== '') return 'npm start';
  const candidates = [];
  if (typeof pkg.main === 'string' && pkg.main !== '') candidates.push(pkg.main);
  candidates.push('server.js', 'index.js', 'app.js', 'main.js');
  for (const c of candidates) {
    if (exists(c) && fs.statSync(path.join(dir, c)).isFile()) return `node ${JSON.stringify(c)}`;
  }
  return null;
}

function releaseYaml(dir) {
  const web = command(dir);
  // JSON strings are valid YAML scalars, which spares any quoting rules.
  return web ? `---\ndefault_process_types:\n  web: ${JSON.stringify(web)}\n` : '---\ndefault_process_types: {}\n';
}

module.exports = { releaseYaml };
if (require.main === module) process.stdout.write(releaseYaml(process.argv[2]));
