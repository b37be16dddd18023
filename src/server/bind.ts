// Binds the ports before anything else happens: `mandate serve` takes both addresses first, so a
// busy port stops it with one clear line before it loads keys, writes a key file or says SERVING.

import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createNetServer, type Server as NetServer } from 'node:net';

/** HOST:PORT (HOST may be [v6]) as listen() takes it. */
export function splitListen(listen: string): { host: string; port: number } {
  const at = listen.lastIndexOf(':');
  return { host: listen.slice(0, at).replace(/^\[(.*)\]$/, '$1'), port: Number(listen.slice(at + 1)) };
}

/** A port bound but not yet serving: the error says which address and what for. */
export class BindError extends Error {
  override name = 'BindError';
}

async function bind<S extends NetServer>(server: S, listen: string, role: string): Promise<S> {
  const { host, port } = splitListen(listen);
  await new Promise<void>((resolveBind, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new BindError(err.code === 'EADDRINUSE' ? `address ${listen} (${role}) is in use` : err.code === 'EACCES' ? `address ${listen} (${role}): permission denied` : `cannot listen on ${listen} (${role}): ${err.message}`)),
    );
    server.listen(port, host, () => resolveBind());
  });
  return server;
}

/** The Check port: connections are handed to the gRPC server once the server is set up (server.ts). */
export function bindCheckPort(listen: string): Promise<NetServer> {
  return bind(createNetServer({ pauseOnConnect: false }), listen, 'check');
}

/** The admin port: requests are handled once admin.ts attaches its handler. */
export function bindAdminPort(listen: string): Promise<HttpServer> {
  return bind(createHttpServer(), listen, 'admin');
}
