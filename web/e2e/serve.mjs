// The static server both browser scripts use: the Trunk build at DIST on 127.0.0.1 (a free
// port), with `routes` answering their own path prefixes first (model folders served from
// memory). HEAD requests get the size and no body, as a file server's do.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';

const types = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.css': 'text/css', '.json': 'application/json' };

export async function serve(dist, routes = {}) {
  const root = path.resolve(dist);
  const server = http.createServer((req, res) => {
    const url = decodeURIComponent(req.url.split('?')[0]);
    for (const [prefix, handle] of Object.entries(routes)) {
      if (url.startsWith(prefix)) return handle(req, res, url.slice(prefix.length));
    }
    const file = path.resolve(path.join(root, url.endsWith('/') ? url + 'index.html' : url));
    if (!file.startsWith(root)) { res.writeHead(403); return res.end(); }
    fs.readFile(file, (err, data) => {
      if (err) { res.writeHead(404); return res.end('not found'); }
      res.writeHead(200, { 'content-type': types[path.extname(file)] || 'application/octet-stream', 'content-length': data.length });
      res.end(req.method === 'HEAD' ? undefined : data);
    });
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  return { server, base: `http://127.0.0.1:${server.address().port}/` };
}
