'use strict';
// One node start for finalize: prints how many production dependencies package.json declares (0 lets
// finalize skip npm entirely) and the dependency cache key, and writes the release step's YAML where
// bin/release will find it, as libbuildpack-based CF buildpacks do.
//
// The key names one installed node_modules: the lock file (npm ci installs exactly it), package.json (its
// dependencies and install scripts) and the node that runs them (native modules). Without a lock file there is
// no key ("-"): npm install may resolve other versions each time.
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { releaseYaml } = require('./release.cjs');

const [buildDir, releaseFile] = process.argv.slice(2);
const pkg = JSON.parse(fs.readFileSync(path.join(buildDir, 'package.json'), 'utf8'));
fs.writeFileSync(releaseFile, releaseYaml(buildDir));
const deps = Object.assign({}, pkg.dependencies, pkg.optionalDependencies);
process.stderr.write(`-----> Using node ${process.version}\n`);
const lock = ['npm-shrinkwrap.json', 'package-lock.json'].map((f) => path.join(buildDir, f)).find((f) => fs.existsSync(f));
let key = '-';
if (lock) {
  const hash = crypto.createHash('sha256');
  for (const part of [process.version, process.arch, path.basename(lock), fs.readFileSync(lock), fs.readFileSync(path.join(buildDir, 'package.json'))]) {
    hash.update(part);
    hash.update('\0');
  }
  key = hash.digest('hex').slice(0, 32);
}
process.stdout.write(`${Object.keys(deps).length} ${key}`);
