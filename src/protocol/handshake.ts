// The handshake rules of the coordinator <-> worker contract (proto/lora_mpt/v1): which Hello is
// welcome, and the refusal a mismatched worker gets. A refusal says what is wrong and what to do, and
// whether waiting can fix it (`retryable`): the worker decides on that field, never on the text.
import type { Hello } from '../proto/lora_mpt/v1/coordinator.ts';
import { peerText } from './peer-text.ts';

/**
 * Bump when a proto change is not backward compatible. 2: all-reduce frames carry an HMAC under
 * the Welcome's frame key, results carry a gradient norm the coordinator checks (docs/security.md).
 * 3: the Welcome's run config carries useRslora (an older worker would train with alpha/r instead)
 * and useDora (an older worker would train plain LoRA, without the magnitudes) and layersToTransform
 * (an older worker would adapt every block). 4: the run config carries the LoRA spec as one nested
 * `lora` value (src/checkpoint/lora-spec.ts), which an older worker cannot read. 5: all-reduce frames
 * (version 3) carry their sender's Ed25519 signature, which an older worker neither makes nor reads;
 * Ready names the worker's public key and ReduceStart every participant's. 6: a MicroBatch's token
 * ids, labels and mask are little-endian int32 bytes, not repeated varints (an older worker would
 * read them as empty). 7: all-reduce frames (version 4) carry a keyed BLAKE3 MAC, not HMAC-SHA256
 * (an older worker's frames would all be refused as forged).
 */
export const PROTOCOL_VERSION = 7;

export interface Refusal {
  readonly reason: string;
  /** The same worker may be welcome later (e.g. its previous stream has not been reaped yet). */
  readonly retryable: boolean;
}

export interface AdmissionRules {
  /** Worker ids dropped from the run (refused results): refused for good. */
  readonly dropped?: ReadonlySet<string>;
  /** Most workers at once (connected ones count); beyond it a Hello is refused until one leaves. */
  readonly maxWorkers?: number;
  /** The worker id the stream's credential names (client certificate or token); the Hello must agree. */
  readonly credentialId?: string;
  /** Milliseconds a worker must still stay out (quarantined for hoarding), or undefined. */
  quarantined?(id: string): number | undefined;
}

/** The worker id a Hello joins as: the credential's when there is one, else the Hello's own. */
export const joinedId = (hello: Hello, rules: AdmissionRules = {}): string =>
  rules.credentialId ?? hello.workerId;

/** Why this Hello is refused, or undefined when the worker may join. */
export function refusalOf(
  hello: Hello,
  runId: string,
  connected: ReadonlySet<string>,
  rules: AdmissionRules = {},
): Refusal | undefined {
  const final = (reason: string): Refusal => ({ reason, retryable: false });
  if (hello.protocolVersion !== PROTOCOL_VERSION) {
    return final(
      `protocol version ${hello.protocolVersion} does not match the coordinator's ${PROTOCOL_VERSION}; run the same lora-mpt version on workers and coordinator`,
    );
  }
  if (hello.runId !== '' && hello.runId !== runId) {
    return final(
      `this coordinator runs "${runId}", not "${peerText(hello.runId, 64)}"; point the worker at its own run's coordinator`,
    );
  }
  const cred = rules.credentialId;
  if (cred !== undefined && hello.workerId !== '' && hello.workerId !== cred) {
    return final(
      `this worker's credential is for worker "${peerText(cred)}" but its Hello says "${peerText(hello.workerId)}"; use --worker_id ${peerText(cred)} or leave it out`,
    );
  }
  const id = joinedId(hello, rules);
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(id)) {
    return final(`worker id "${peerText(id)}" is not 1-128 characters of letters, digits, ".", "_" or "-"`);
  }
  if (rules.dropped?.has(id)) {
    return final(
      `worker "${id}" was dropped from run ${runId} for refused results; check its device and restart it in a new run`,
    );
  }
  const left = rules.quarantined?.(id);
  if (left !== undefined) {
    return {
      reason: `worker "${id}" held micro-batches past its deadline and is quarantined for ${Math.ceil(left / 1000)} s more; it may rejoin then`,
      retryable: true,
    };
  }
  if (connected.has(id)) {
    return {
      reason: `worker id "${id}" is already connected; give every worker its own id (the pod name)`,
      retryable: true,
    };
  }
  if (rules.maxWorkers !== undefined && connected.size >= rules.maxWorkers) {
    return {
      reason: `the run already has ${connected.size} workers, the most --max_workers allows; try again when one leaves`,
      retryable: true,
    };
  }
  return undefined;
}

/**
 * Why a Ready's frame signing key is refused, or undefined. `required`: the run authenticates frames
 * (it has a frame key), so a worker without a signing key would leave its rounds unchecked.
 */
export function frameKeyRefusal(key: Uint8Array | undefined, required: boolean): string | undefined {
  if (key === undefined ? !required : key.length === 32) return undefined;
  return `the Ready's frame_public_key must be the worker's 32-byte Ed25519 public key (got ${key?.length ?? 'none'}); run the same lora-mpt version on workers and coordinator`;
}
