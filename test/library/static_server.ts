/**
 * A minimal static file server over a directory (the repository), for the URL-import and bundle tests: GET
 * only, no directory listings, no paths outside the root, content types by extension. Records every
 * requested path.
 */
import { extname, join, normalize } from "node:path";

const TYPES: Record<string, string> = {
  ".ts": "application/typescript; charset=utf-8",
  ".js": "application/javascript; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".wgsl": "text/plain; charset=utf-8",
};

/** A running static server. */
export interface StaticServer {
  /** `http://127.0.0.1:<port>` (no trailing slash). */
  origin: string;
  /** Paths requested so far, in order. */
  requested: string[];
  close(): Promise<void>;
}

/** Serves `root` on 127.0.0.1 (a free port). */
export function serveDirectory(root: string): Promise<StaticServer> {
  const requested: string[] = [];
  return new Promise((resolveServer) => {
    const server = Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      onListen: ({ port }) =>
        resolveServer({
          origin: `http://127.0.0.1:${port}`,
          requested,
          close: async () => {
            await server.shutdown();
          },
        }),
    }, async (request) => {
      const path = decodeURIComponent(new URL(request.url).pathname);
      requested.push(path);
      const rel = normalize(path).replace(/^\/+/, "");
      if (request.method !== "GET" || rel.startsWith("..") || rel.includes("\0")) {
        return new Response("refused", { status: 403 });
      }
      try {
        const file = join(root, rel);
        if (!(await Deno.stat(file)).isFile) return new Response("not a file", { status: 404 });
        return new Response(await Deno.readFile(file), {
          headers: { "content-type": TYPES[extname(file)] ?? "text/plain; charset=utf-8" },
        });
      } catch {
        return new Response("not found", { status: 404 });
      }
    });
  });
}
