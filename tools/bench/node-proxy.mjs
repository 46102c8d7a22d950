#!/usr/bin/env node
// A reference for the gateway benchmark, not a product: the least a node:http proxy can do per
// request (keep-alive agent, headers passed through, bodies piped, no checks, no metrics, no logs).
// What it costs over direct is the floor for any gateway written on node's http stack.
// Usage: node node-proxy.mjs <port> <upstream-url>  (strips the /api prefix, as the gateway does)
import http from 'node:http';

const [port, upstream] = process.argv.slice(2);
const target = new URL(upstream);
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

http
  .createServer((req, res) => {
    const headers = { ...req.headers, host: target.host };
    delete headers.connection;
    const proxied = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url.replace(/^\/api/, ''), headers, agent }, (answer) => {
      res.writeHead(answer.statusCode, answer.headers);
      answer.pipe(res);
    });
    proxied.on('error', () => {
      res.statusCode = 502;
      res.end();
    });
    req.pipe(proxied);
  })
  .listen(Number(port), '127.0.0.1');
