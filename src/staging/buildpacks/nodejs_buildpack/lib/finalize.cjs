'use strict';
// One node start for finalize: prints how many production dependencies package.json declares (0 lets
// finalize skip npm entirely) and writes the release step's YAML where bin/release will find it, as
// libbuildpack-based CF buildpacks do.
const fs = require('node:fs');
const path = require('node:path');
const { releaseYaml } = require('./release.cjs');

const [buildDir, releaseFile] = process.argv.slice(2);
const pkg = JSON.parse(fs.readFileSync(path.join(buildDir, 'package.json'), 'utf8'));
fs.writeFileSync(releaseFile, releaseYaml(buildDir));
const deps = Object.assign({}, pkg.dependencies, pkg.optionalDependencies);
process.stderr.write(`-----> Using node ${process.version}\n`);
process.stdout.write(String(Object.keys(deps).length));
