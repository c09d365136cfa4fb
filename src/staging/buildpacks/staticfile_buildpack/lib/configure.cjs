'use strict';
// Reads the Staticfile (`key: value` lines) into the server's settings: root, pushstate, directory listing
// is not supported; dot files stay hidden unless host_dot_files is enabled.
const fs = require('node:fs');
const path = require('node:path');

const dir = process.argv[2];
const settings = {};
const staticfile = path.join(dir, 'Staticfile');
if (fs.existsSync(staticfile)) {
  for (const line of fs.readFileSync(staticfile, 'utf8').split(/\r?\n/)) {
    const m = /^\s*([A-Za-z_]+)\s*:\s*(.*?)\s*$/.exec(line);
    if (m) settings[m[1].toLowerCase()] = m[2];
  }
}
let root = '.';
if (settings.root) {
  root = path.posix.normalize(settings.root.replace(/\\/g, '/')).replace(/^\/+/, '');
  if (root === '' || root.startsWith('..')) root = '.';
} else if (!fs.existsSync(path.join(dir, 'index.html')) && fs.existsSync(path.join(dir, 'public'))) {
  root = 'public';
}
const enabled = (v) => typeof v === 'string' && /^(enabled|true|yes|on)$/i.test(v);
process.stdout.write(
  JSON.stringify({ root, pushstate: enabled(settings.pushstate), hostDotFiles: enabled(settings.host_dot_files) }),
);
