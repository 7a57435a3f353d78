// X.509 material for a run's gRPC (docs/security.md): a CA, the coordinator's server certificate
// (its host names and addresses as subjectAltName) and one client certificate per worker (the
// worker id as common name: a coordinator with --tls_client_ca names the worker by it). Keys are
// RSA-2048 made by node:crypto; node-forge only assembles and signs the certificates
// (docs/dependencies.md). `lora-mpt certs` writes them; the tests use the same code.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import forge from 'node-forge';

export interface KeyAndCert {
  /** PEM. */
  readonly cert: string;
  /** PEM (PKCS#1). Keep it private. */
  readonly key: string;
}

interface Leaf {
  readonly commonName: string;
  readonly days: number;
  /** serverAuth: host names and IP addresses the certificate is valid for. */
  readonly hosts?: readonly string[];
  readonly usage: 'server' | 'client';
}

function rsaKeys(): {
  forgePublic: forge.pki.PublicKey;
  forgePrivate: forge.pki.rsa.PrivateKey;
  pem: string;
} {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  return {
    forgePublic: forge.pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }).toString()),
    forgePrivate: forge.pki.privateKeyFromPem(pem),
    pem,
  };
}

function skeleton(commonName: string, days: number, publicKey: forge.pki.PublicKey): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  // 16 random bytes with the top bit clear: a positive serial, unique in practice.
  cert.serialNumber =
    (randomBytes(16)[0]! & 0x7f).toString(16).padStart(2, '0') + randomBytes(15).toString('hex');
  // Back-dated a few minutes: clocks of the machines in a cluster are not exactly equal.
  cert.validity.notBefore = new Date(Date.now() - 5 * 60_000);
  cert.validity.notAfter = new Date(Date.now() + days * 86_400_000);
  cert.setSubject([{ name: 'commonName', value: commonName }]);
  return cert;
}

/** A self-signed CA that signs the run's leaf certificates. */
export function makeCa(commonName: string, days: number): KeyAndCert {
  const k = rsaKeys();
  const cert = skeleton(commonName, days, k.forgePublic);
  cert.setIssuer(cert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(k.forgePrivate, forge.md.sha256.create());
  return { cert: forge.pki.certificateToPem(cert), key: k.pem };
}

/** A server or client certificate signed by `ca`. */
export function makeLeaf(ca: KeyAndCert, o: Leaf): KeyAndCert {
  const caCert = forge.pki.certificateFromPem(ca.cert);
  const caKey = forge.pki.privateKeyFromPem(ca.key);
  const k = rsaKeys();
  const cert = skeleton(o.commonName, o.days, k.forgePublic);
  cert.setIssuer(caCert.subject.attributes);
  const altNames = (o.hosts ?? []).map((h) => (isIP(h) ? { type: 7, ip: h } : { type: 2, value: h }));
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: o.usage === 'server', clientAuth: o.usage === 'client' },
    ...(altNames.length > 0 ? [{ name: 'subjectAltName', altNames }] : []),
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: caCert.generateSubjectKeyIdentifier().getBytes() },
  ]);
  cert.sign(caKey, forge.md.sha256.create());
  return { cert: forge.pki.certificateToPem(cert), key: k.pem };
}
