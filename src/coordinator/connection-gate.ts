// The coordinator's listening socket, bounded before anyone is authenticated (docs/security.md,
// "Bounded before authentication"). TLS ends here rather than inside grpc-js so that connections
// still in their handshake can be counted and capped, each handshake has a deadline of seconds
// (Node's default is 120 s), and every TLS-level refusal is seen with its reason. A socket that
// completed its handshake is handed to gRPC (Server.createConnectionInjector) as its own listener would.
import net from 'node:net';
import tls from 'node:tls';
import type { ServerSecurity } from '../protocol/transport.ts';

/** Why a TCP connection was closed before any TLS: a cap was reached. */
export type ConnectionRefusal = 'pending_handshakes' | 'connections' | 'accept_failed';
/** Why a TLS handshake failed (lora_mpt_auth_failures_total{reason}). */
export type TlsRefusal =
  | 'handshake_timeout'
  | 'no_client_certificate'
  | 'bad_client_certificate'
  | 'tls_handshake';

export interface GateLimits {
  /** Connections accepted whose TLS handshake has not completed; more are closed at once. */
  readonly maxPendingHandshakes: number;
  /** Connections open at once, authenticated or not; more are closed at once. */
  readonly maxConnections: number;
  /** A TLS handshake not complete after this long is abandoned. */
  readonly handshakeTimeoutMs: number;
}

export interface GateOptions extends GateLimits {
  readonly host: string;
  readonly port: number;
  readonly security: ServerSecurity;
  /** A connection ready for HTTP/2: TLS complete (or plaintext under `--insecure`). */
  accept(socket: net.Socket): void;
  onConnectionRefused(reason: ConnectionRefusal, peer: string): void;
  onTlsRefused(reason: TlsRefusal, peer: string, detail: string): void;
}

export interface ConnectionGate {
  readonly port: number;
  /** Connections whose handshake is in progress now. */
  pendingHandshakes(): number;
  close(): Promise<void>;
}

/**
 * Open-file budget of a process whose soft limit is `nofile`: what the gate may spend on peers,
 * leaving the rest for NATS, metrics, checkpoints and logs (a flood that took every descriptor
 * made a metrics.jsonl append fail with EMFILE and stopped the run, issue #23).
 */
export function limitsForOpenFiles(nofile: number, handshakeTimeoutMs = 5_000): GateLimits {
  return {
    maxPendingHandshakes: Math.max(4, Math.min(1024, Math.floor(nofile / 8))),
    maxConnections: Math.max(8, Math.floor(nofile / 2)),
    handshakeTimeoutMs,
  };
}

/** The reason label of a failed handshake (OpenSSL's messages, Node's codes). */
export function tlsRefusalOf(err: Error & { code?: string }): TlsRefusal {
  if (err.code === 'ERR_TLS_HANDSHAKE_TIMEOUT') return 'handshake_timeout';
  const text = `${err.code ?? ''} ${err.message}`;
  if (/PEER_DID_NOT_RETURN_A_CERTIFICATE|did not return a certificate/i.test(text))
    return 'no_client_certificate';
  if (/CERTIFICATE|unknown ca|UNKNOWN_CA|verify/i.test(text)) return 'bad_client_certificate';
  return 'tls_handshake';
}

const peerOf = (s: net.Socket) => `${s.remoteAddress ?? '?'}:${s.remotePort ?? '?'}`;

export async function openConnectionGate(o: GateOptions): Promise<ConnectionGate> {
  const sec = o.security;
  // Keyed by the peer's address and port, unique among live TCP connections: the TLS socket of a
  // completed handshake is another object than the raw socket that was counted.
  const pending = new Set<string>();
  const server: net.Server =
    sec.kind === 'insecure'
      ? net.createServer((socket) => o.accept(socket))
      : tls.createServer(
          {
            cert: sec.cert,
            key: sec.key,
            ...(sec.clientCa ? { ca: sec.clientCa, requestCert: true, rejectUnauthorized: true } : {}),
            ALPNProtocols: ['h2'],
            handshakeTimeout: o.handshakeTimeoutMs,
          },
          (socket) => {
            pending.delete(peerOf(socket));
            o.accept(socket);
          },
        );
  server.maxConnections = o.maxConnections;
  // Every open connection, to end those still open when the gate closes (below).
  const open = new Set<net.Socket>();
  server.on('connection', (raw: net.Socket) => {
    open.add(raw);
    raw.once('close', () => open.delete(raw));
  });
  server.on('drop', (d?: { remoteAddress?: string; remotePort?: number }) =>
    o.onConnectionRefused('connections', `${d?.remoteAddress ?? '?'}:${d?.remotePort ?? '?'}`),
  );
  if (sec.kind === 'tls') {
    // Before tls.Server wraps the socket: refused sockets never start a handshake.
    server.prependListener('connection', (raw: net.Socket) => {
      const peer = peerOf(raw);
      if (pending.size >= o.maxPendingHandshakes) {
        raw.destroy();
        o.onConnectionRefused('pending_handshakes', peer);
        return;
      }
      pending.add(peer);
      raw.once('close', () => pending.delete(peer));
    });
    server.on('tlsClientError', (err: Error & { code?: string }, socket: tls.TLSSocket) => {
      const peer = peerOf(socket);
      pending.delete(peer);
      // A client certificate that failed verification ends the socket without an error of its own
      // (the event then says "socket hang up"): the verification result names it.
      const unverified = (socket as tls.TLSSocket & { authorizationError?: Error | string })
        .authorizationError;
      if (unverified) o.onTlsRefused('bad_client_certificate', peer, String(unverified));
      else o.onTlsRefused(tlsRefusalOf(err), peer, err.message);
      socket.destroy();
    });
  }
  // accept(2) failing (EMFILE, ENFILE) must not end the process: libuv already closed the
  // connection it could not take; count it and keep listening.
  server.on('error', (err: Error & { syscall?: string }) => {
    if (err.syscall === 'accept') o.onConnectionRefused('accept_failed', '?');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address();
  return {
    port: typeof addr === 'object' && addr ? addr.port : o.port,
    pendingHandshakes: () => pending.size,
    // Called once gRPC has ended its sessions (gracefully, or forced after its grace period): what
    // is still open is a peer mid-handshake or one gRPC no longer tracks (a hung worker's socket),
    // which server.close() would wait for, up to the handshake deadline or for ever. End them.
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const raw of open) raw.destroy();
      }),
  };
}
