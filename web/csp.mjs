// Trunk post_build hook (Trunk.toml [[hooks]]): gives the built page its Content-Security-Policy
// as a <meta> tag, so every host serves it with the page (static hosts set no headers). Trunk
// writes one inline module script (the loader of the page's wasm); its SHA-256 is allowed, and no
// other inline script is. Run by `trunk build` and `trunk serve` alike, on the staged index.html.
//
// The policy, directive by directive:
//   script-src  'self' 'wasm-unsafe-eval' + the loader's hash: no eval, no other inline script
//               ('wasm-unsafe-eval' compiles WebAssembly, and only that);
//   worker-src  'self' blob: the worker boots from a blob: script that imports the worker's JS
//               (a blob: worker inherits this policy, so it applies to the worker too);
//   connect-src 'self' http: https: the worker fetches models from any server the visitor names;
//   img-src     'self' data: blob: maps and images are drawn as data: and blob: URLs;
//   style-src   'self' 'unsafe-inline': Leptos sets style attributes (colour swatches, bars);
//               styles cannot run code;
//   object-src 'none', base-uri 'self', form-action 'none'.
import fs from 'node:fs';
import crypto from 'node:crypto';
import path from 'node:path';

const dir = process.env.TRUNK_STAGING_DIR;
if (!dir) {
  console.error('csp.mjs: TRUNK_STAGING_DIR is not set (run by Trunk as a post_build hook)');
  process.exit(1);
}
const file = path.join(dir, 'index.html');
let html = fs.readFileSync(file, 'utf8').replace(/\s*<meta http-equiv="Content-Security-Policy"[^>]*>/g, '');
const inline = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)].filter((m) => !/\bsrc\s*=/.test(m[1]));
if (inline.length !== 1) {
  console.error(`csp.mjs: expected Trunk's one inline loader script in ${file}, found ${inline.length}`);
  process.exit(1);
}
const hashes = inline.map((m) => `'sha256-${crypto.createHash('sha256').update(m[2], 'utf8').digest('base64')}'`);
const policy = [
  "default-src 'self'",
  `script-src 'self' 'wasm-unsafe-eval' ${hashes.join(' ')}`,
  "worker-src 'self' blob:",
  "connect-src 'self' http: https:",
  "img-src 'self' data: blob:",
  "style-src 'self' 'unsafe-inline'",
  "object-src 'none'",
  "base-uri 'self'",
  "form-action 'none'",
].join('; ');
html = html.replace(/<head>/, `<head>\n    <meta http-equiv="Content-Security-Policy" content="${policy}" />`);
fs.writeFileSync(file, html);
console.log(`csp.mjs: ${file}: ${policy}`);
