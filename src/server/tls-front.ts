// TLS in front of the gRPC server (grpc-server.ts). Each connection accepted on the Check port is handshaken here, with
// the secure context current at that moment (tls-source.ts swaps it when the SVID rotates or
// the bundles change: new connections get the new certificate, open ones keep theirs and no
// call is dropped), then handed to the gRPC server. Doing the handshake
// ourselves lets us hold a client X.509-SVID to its own trust domain's authorities, which
// OpenSSL's "any CA in the list" cannot: with the Workload API, an authority of a federated
// domain must not vouch for an identity in ours.

import type { Socket } from 'node:net';
import { createServer, type DetailedPeerCertificate, type Server as TlsServer, type SecureContextOptions, type TLSSocket } from 'node:tls';
import { parseSpiffeId } from '../core/spiffe-id.js';
import { soleUriSan } from '../identity/x509.js';
import type { TlsMaterial, TlsSource } from '../identity/tls-source.js';
import type { Logger } from '../telemetry/log.js';

const REFUSAL_LOG_INTERVAL_MS = 1000;

export interface TlsFront {
  /** Starts the handshake on a freshly accepted connection. */
  accept(socket: Socket): void;
  /** Connections refused after the handshake (peer not an SVID of a trusted domain), and failed handshakes. */
  readonly stats: { refused: number; handshakeFailures: number };
  close(): void;
}

function contextOptions(m: TlsMaterial): SecureContextOptions {
  return { cert: m.certificatePem, key: m.privateKeyPem, ...(m.clientCaPem === null ? {} : { ca: m.clientCaPem }), minVersion: 'TLSv1.2' };
}

/**
 * Why a verified client certificate may still not connect, or null. Only with the Workload
 * API's per-domain authorities: the leaf must carry one SPIFFE ID (X.509-SVID §2), and one of
 * the certificates its chain was verified through must be an authority of that ID's domain.
 */
export function refusePeer(peer: DetailedPeerCertificate, authorities: ReadonlyMap<string, ReadonlySet<string>>): string | null {
  const uri = soleUriSan(peer.subjectaltname);
  if (uri === null) return 'the client certificate does not carry exactly one URI SAN, as an X.509-SVID does';
  const id = parseSpiffeId(uri);
  if (!id.ok) return 'the client certificate\'s URI SAN is not a SPIFFE ID';
  const own = authorities.get(id.value.trustDomain);
  if (own === undefined) return `no bundle is trusted for the client's trust domain ${id.value.trustDomain}`;
  const seen = new Set<string>();
  for (let c: DetailedPeerCertificate | undefined = peer.issuerCertificate; c !== undefined && !seen.has(c.fingerprint256); c = c.issuerCertificate) {
    if (own.has(c.fingerprint256)) return null;
    seen.add(c.fingerprint256);
  }
  return `${id.value.id} is not signed by an authority of ${id.value.trustDomain}`;
}

export function createTlsFront(source: TlsSource, inject: (socket: TLSSocket) => void, logger: Logger, handshakeTimeoutMs: number): TlsFront {
  const initial = source.current;
  if (initial === null) throw new Error('createTlsFront before the TLS source is ready');
  const stats = { refused: 0, handshakeFailures: 0 };
  const askClients = initial.clientCaPem !== null;
  const server: TlsServer = createServer({
    ...contextOptions(initial),
    // A client certificate is required whenever there are authorities to verify it against.
    requestCert: askClients,
    rejectUnauthorized: askClients,
    ALPNProtocols: ['h2'],
    // A handshake that stalls is cut (tlsClientError, counted as a failed handshake).
    handshakeTimeout: handshakeTimeoutMs,
  });
  let authorities = initial.authorities;
  const unsubscribe = source.onChange((m) => {
    server.setSecureContext(contextOptions(m));
    authorities = m.authorities;
  });

  let lastLog = 0;
  let unlogged = 0;
  const report = (message: string, fields: Record<string, unknown>): void => {
    // Refusals are an attacker's to multiply: at most one line a second, with the count since.
    const now = Date.now();
    if (now - lastLog < REFUSAL_LOG_INTERVAL_MS) {
      unlogged++;
      return;
    }
    logger.warn(message, { ...fields, ...(unlogged > 0 ? { alsoRefusedSinceLastLine: unlogged } : {}) });
    lastLog = now;
    unlogged = 0;
  };

  server.on('secureConnection', (socket: TLSSocket) => {
    if (socket.alpnProtocol !== 'h2') {
      stats.refused++;
      report('refused a TLS client: it did not negotiate HTTP/2 (ALPN h2)', { peer: socket.remoteAddress });
      socket.destroy();
      return;
    }
    if (authorities !== null) {
      const why = refusePeer(socket.getPeerCertificate(true), authorities);
      if (why !== null) {
        stats.refused++;
        report('refused a TLS client', { peer: socket.remoteAddress, reason: why });
        socket.destroy();
        return;
      }
    }
    inject(socket);
  });
  server.on('tlsClientError', (err, socket) => {
    stats.handshakeFailures++;
    report('TLS handshake failed', { peer: socket.remoteAddress, reason: err.message });
    // tls.Server reports a handshake timeout on a socket it did not accept itself, but leaves
    // the connection open: without this a client that never finishes its handshake keeps its
    // slot of limits.maxConnections for as long as it likes.
    socket.destroy();
  });

  return {
    accept: (socket) => server.emit('connection', socket),
    stats,
    close: () => {
      unsubscribe();
    },
  };
}
