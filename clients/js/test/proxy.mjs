// A reverse proxy that serves a daemon under a path, as a studio's own host often does
// (nginx: `location /syncd/ { proxy_pass http://127.0.0.1:8765/; }`): HTTP and the WebSocket upgrade,
// the path stripped on the way in; anything outside that path is the studio's, and here 404.

import { createServer, request } from "node:http";
import { connect } from "node:net";

/** Start one on a free port for the daemon at `port`, under `prefix`; `close()` ends it and its sockets. */
export async function prefixProxy(port, prefix) {
  const inside = (url) => {
    if (url !== prefix && !url.startsWith(`${prefix}/`) && !url.startsWith(`${prefix}?`)) return null;
    return url.slice(prefix.length).replace(/^(?!\/)/, "/");
  };
  const sockets = new Set();
  const server = createServer((req, res) => {
    const path = inside(req.url);
    if (path === null) {
      res.writeHead(404, { "Content-Type": "text/plain" }).end(`${req.url} is not under ${prefix}`);
      return;
    }
    const upstream = request({ host: "127.0.0.1", port, method: req.method, path, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode, answer.headers);
      answer.pipe(res);
    });
    upstream.on("error", () => res.destroy());
    req.pipe(upstream);
  });
  server.on("upgrade", (req, socket, head) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    const path = inside(req.url);
    if (path === null) {
      socket.end("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
      return;
    }
    const upstream = connect(port, "127.0.0.1", () => {
      const lines = [`${req.method} ${path} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      upstream.write(`${lines.join("\r\n")}\r\n\r\n`);
      upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    upstream.on("error", () => socket.destroy());
    socket.on("error", () => upstream.destroy());
    socket.on("close", () => upstream.destroy());
  });
  await new Promise((done) => server.listen(0, "127.0.0.1", done));
  return {
    url: `http://127.0.0.1:${server.address().port}${prefix}`,
    close() {
      for (const socket of sockets) socket.destroy();
      server.closeAllConnections();
      server.close();
    },
  };
}
