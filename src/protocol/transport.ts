// How the Session stream is protected on the wire (docs/security.md): TLS with the coordinator's
// certificate (the coordinator's side ends TLS in src/coordinator/connection-gate.ts), optionally
// mutual TLS (workers present certificates signed by the run's CA), and a
// bearer token in every stream's metadata (credentials.ts). `insecure` is plaintext with no token:
// only `--insecure` asks for it, and the processes say so loudly.
import { type ChannelCredentials, credentials, Metadata } from '@grpc/grpc-js';
import { AUTH_METADATA_KEY } from './credentials.ts';

export type ServerSecurity =
  | { readonly kind: 'insecure' }
  | {
      readonly kind: 'tls';
      /** PEM certificate chain and key of the coordinator. */
      readonly cert: Buffer;
      readonly key: Buffer;
      /** PEM CA whose certificates workers must present (mutual TLS); none: server TLS only. */
      readonly clientCa?: Buffer;
      /** The run's secret (credentials.ts). */
      readonly runToken: string;
    };

export type ClientSecurity =
  | { readonly kind: 'insecure' }
  | {
      readonly kind: 'tls';
      /** PEM CA that signed the coordinator's certificate. */
      readonly ca: Buffer;
      /** This worker's certificate and key, for mutual TLS. */
      readonly cert?: Buffer;
      readonly key?: Buffer;
      /** A worker token, or the run token with a client certificate. */
      readonly token: string;
    };

export function clientCredentials(s: ClientSecurity): ChannelCredentials {
  if (s.kind === 'insecure') return credentials.createInsecure();
  const tls = credentials.createSsl(s.ca, s.key ?? null, s.cert ?? null);
  const bearer = credentials.createFromMetadataGenerator((_params, callback) => {
    const md = new Metadata();
    md.set(AUTH_METADATA_KEY, `Bearer ${s.token}`);
    callback(null, md);
  });
  return credentials.combineChannelCredentials(tls, bearer);
}
