// The static server the browser scripts use: the Trunk build at DIST on 127.0.0.1 (a free
// port), with `routes` answering their own path prefixes first (model folders served from
// memory). HEAD requests get the size and no body, as a file server's do.
//
// Options: `spa` answers every missing path with index.html and status 200, as trunk serve's
// fallback and many static hosts do (the page must take that for "absent"); `cors` lets pages of
// other origins read the routes, as the Hugging Face Hub does (DIST may then be null: a model
// server only).
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';

const types = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.css': 'text/css', '.json': 'application/json' };
const cors = {
  'access-control-allow-origin': '*',
  'access-control-allow-methods': 'GET, HEAD',
  'access-control-allow-headers': 'range, if-range',
  'access-control-expose-headers': 'content-length, content-range, etag, x-linked-etag, accept-ranges',
};

export async function serve(dist, routes = {}, options = {}) {
  const root = dist && path.resolve(dist);
  const server = http.createServer((req, res) => {
    const url = decodeURIComponent(req.url.split('?')[0]);
    if (options.cors) {
      for (const [k, v] of Object.entries(cors)) res.setHeader(k, v);
      if (req.method === 'OPTIONS') { res.writeHead(204); return res.end(); }
    }
    for (const [prefix, handle] of Object.entries(routes)) {
      if (url.startsWith(prefix)) return handle(req, res, url.slice(prefix.length));
    }
    if (!root) { res.writeHead(404); return res.end('not found'); }
    const file = path.resolve(path.join(root, url.endsWith('/') ? url + 'index.html' : url));
    if (!file.startsWith(root)) { res.writeHead(403); return res.end(); }
    const send = (file, data) => {
      res.writeHead(200, { 'content-type': types[path.extname(file)] || 'application/octet-stream', 'content-length': data.length });
      res.end(req.method === 'HEAD' ? undefined : data);
    };
    fs.readFile(file, (err, data) => {
      if (!err) return send(file, data);
      if (!options.spa) { res.writeHead(404); return res.end('not found'); }
      const index = path.join(root, 'index.html');
      fs.readFile(index, (err, data) => (err ? (res.writeHead(500), res.end()) : send(index, data)));
    });
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  return { server, base: `http://127.0.0.1:${server.address().port}/` };
}
