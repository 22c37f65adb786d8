// dedupfn's actionloop launcher for the nodejs kinds (see launchers.go):
// it loads the action named by dedupfn-action.json in its working
// directory, acks on fd 3, then runs one activation per line of stdin,
// answering each with one JSON line on fd 3.
'use strict';
const fs = require('fs');
const path = require('path');
const readline = require('readline');
const Module = require('module');

const SENTINEL = 'XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX';
const manifest = JSON.parse(fs.readFileSync('dedupfn-action.json', 'utf8'));

function writeResult(obj) {
  let line;
  try {
    line = JSON.stringify(obj);
  } catch (e) {
    line = JSON.stringify({ error: 'the result cannot be encoded as JSON: ' + e.message });
  }
  fs.writeSync(3, line + '\n');
}

function message(e) {
  if (e instanceof Error) return e.message;
  if (typeof e === 'string') return e;
  try { return JSON.stringify(e); } catch (_) { return String(e); }
}

// load returns the action's main function: from a source file (a main
// function exported or declared at its top level), or from a Node.js
// package (its package.json "main", else index.js).
function load() {
  const entry = path.resolve(manifest.entry);
  const name = manifest.main;
  if (manifest.package) {
    const exports = require(entry);
    const fn = exports && exports[name];
    if (typeof fn !== 'function') throw new Error(`the package exports no function ${name}`);
    return fn;
  }
  const m = new Module(entry, null);
  m.filename = entry;
  m.paths = Module._nodeModulePaths(path.dirname(entry));
  // A function declared at the top level of a script is local to its
  // module: export it, unless the module exported one itself.
  const src = fs.readFileSync(entry, 'utf8') +
    `\n;if (typeof ${name} === 'function' && typeof module.exports.${name} !== 'function') module.exports.${name} = ${name};\n`;
  m._compile(src, entry);
  const fn = m.exports[name];
  if (typeof fn !== 'function') throw new Error(`the action has no function ${name}`);
  return fn;
}

async function main() {
  let fn, loadError;
  try {
    fn = load();
  } catch (e) {
    loadError = e;
    console.error(e && e.stack ? e.stack : String(e));
  }
  if (process.env.__OW_WAIT_FOR_ACK) {
    fs.writeSync(3, JSON.stringify(loadError ? { ok: false, error: message(loadError) } : { ok: true }) + '\n');
  }
  if (loadError) process.exit(1);
  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of rl) {
    if (!line.trim()) continue;
    let result;
    try {
      const msg = JSON.parse(line);
      for (const [k, v] of Object.entries(msg)) {
        if (k !== 'value') process.env['__OW_' + k.toUpperCase()] = String(v);
      }
      result = await fn(msg.value || {});
      if (result === null || typeof result !== 'object' || Array.isArray(result)) {
        result = { error: 'The action did not return a dictionary.' };
      }
    } catch (e) {
      console.error(e && e.stack ? e.stack : String(e));
      result = { error: message(e) };
    }
    process.stdout.write(SENTINEL + '\n');
    process.stderr.write(SENTINEL + '\n');
    writeResult(result);
  }
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
