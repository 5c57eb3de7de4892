// Flowlet dev server: serves public/ (the page; "/" is public/index.html) and src/, proxies
// /api/* to the backend (end-to-end headers only, the normalised path), answers /healthz. Plain
// `node server.js`: no npm dependencies at run time. On SIGTERM or SIGINT it stops at once (open
// keep-alive connections are closed too).
import { createReadStream, existsSync, statSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.dirname(fileURLToPath(import.meta.url));
const host = process.env.FLOWLET_FRONTEND_HOST ?? "127.0.0.1";
const port = Number(process.env.FLOWLET_FRONTEND_PORT ?? 3000);
const backend = new URL(process.env.FLOWLET_BACKEND_URL ?? "http://127.0.0.1:8000");

const types = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
};

function serveFile(res, file) {
  const type = types[path.extname(file)] ?? "application/octet-stream";
  res.writeHead(200, { "Content-Type": type });
  createReadStream(file).pipe(res);
}

// Hop-by-hop headers (RFC 9110 7.6.1) describe one connection, never the next: the proxy drops
// them, and those the Connection header names, both ways. Host becomes the backend's.
const hopByHop = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
]);

function endToEndHeaders(headers) {
  const named = String(headers.connection ?? "")
    .split(",")
    .map((token) => token.trim().toLowerCase())
    .filter(Boolean);
  const kept = {};
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (hopByHop.has(lower) || lower.startsWith("proxy-") || named.includes(lower)) continue;
    kept[name] = value;
  }
  return kept;
}

// `url` is the parsed request URL: its normalised path ("." and ".." resolved, an absolute-form
// target reduced to its path) is what the backend gets, never the raw request target.
function proxy(req, res, url) {
  const upstream = http.request(
    {
      hostname: backend.hostname,
      port: backend.port,
      path: url.pathname + url.search,
      method: req.method,
      headers: endToEndHeaders(req.headers),
    },
    (answer) => {
      res.writeHead(answer.statusCode ?? 502, endToEndHeaders(answer.headers));
      answer.pipe(res);
    },
  );
  upstream.on("error", () => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.writeHead(502, { "Content-Type": "application/json" });
    res.end(JSON.stringify({ error: "the backend is unavailable" }));
  });
  req.pipe(upstream);
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url ?? "/", "http://localhost");
  if (url.pathname === "/healthz") {
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(JSON.stringify({ status: "ok" }));
    return;
  }
  if (url.pathname.startsWith("/api/")) {
    proxy(req, res, url);
    return;
  }
  const relative =
    url.pathname === "/"
      ? "public/index.html"
      : url.pathname.startsWith("/src/")
        ? url.pathname.slice(1)
        : `public${url.pathname}`;
  const file = path.resolve(root, relative);
  const allowed = [path.join(root, "public"), path.join(root, "src")];
  if (
    allowed.some((dir) => file.startsWith(dir + path.sep)) &&
    existsSync(file) &&
    statSync(file).isFile()
  ) {
    serveFile(res, file);
    return;
  }
  res.writeHead(404, { "Content-Type": "text/plain" });
  res.end("not found\n");
});

server.listen(port, host, () => {
  console.log(`flowlet-frontend listening on http://${host}:${port}`);
});

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}
