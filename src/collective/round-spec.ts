// Validates what a caller passes to allReduceSum / observeAllReduce, once, at the edge, and turns it
// into the RoundSpec the algorithms trust. Errors name the bad field and what to do.
import { createPublicKey, type KeyObject } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import { AllReduceInputError } from './errors.ts';
import {
  DEFAULT_GRADIENT_ENCODING,
  GRADIENT_ENCODINGS,
  type GradientEncoding,
  isGradientEncoding,
} from './gradient-encoding.ts';
import type { RoundReporter } from './round-report.ts';
import { checkToken, type RoundKey } from './subjects.ts';

/** Options common to members and observers of a round. */
export interface RoundOptions {
  readonly nc: NatsConnection;
  readonly runId: string;
  readonly step: number;
  readonly generation: number;
  /** Contributing member ids, unique, sorted as `[...ids].sort()` does (the summation order). */
  readonly members: readonly string[];
  /** Non-contributing ids that also receive the result; members wait for their ready. Default none. */
  readonly observers?: readonly string[];
  /**
   * The node (machine) of each member, in `members` order: the hierarchical algorithm's topology.
   * Every participant must pass the same list (the coordinator's ReduceStart). Default: one node.
   */
  readonly nodes?: readonly string[];
  /** Deadline for the whole round, barrier included. */
  readonly timeoutMs: number;
  /** Bytes per NATS message; default the server's advertised max_payload. Same on every participant. */
  readonly maxPayload?: number;
  /** Aborts the round (rejects with AllReduceCancelledError and tells the peers). */
  readonly signal?: AbortSignal;
  /** Told what the round cost (bytes, seconds), once, however it ends. */
  readonly onReport?: RoundReporter;
  /**
   * The run's frame key (the coordinator hands it out over authenticated gRPC): every frame carries
   * a MAC (keyed BLAKE3) under it, and frames whose tag does not verify are dropped. Absent: tags anyone can make
   * (tests and benchmarks). Every participant of a round must use the same key.
   */
  readonly frameKey?: Uint8Array;
  /**
   * How gradient values travel (gradient-encoding.ts): 'f32' (default) or 'bf16', half the bytes
   * but rounded, so N workers no longer equal one bitwise. Every participant must use the same.
   */
  readonly encoding?: GradientEncoding;
  /** This participant's Ed25519 private key: it signs every frame it sends (unsigned without). */
  readonly signingKey?: KeyObject;
  /**
   * Ed25519 public keys of `members ++ observers`, in that order (the coordinator hands them out with
   * the round): a frame not signed by the participant it names is dropped (`signature`). Absent:
   * signatures are not checked.
   */
  readonly participantKeys?: readonly KeyObject[];
  /** A frame was refused: forged (`auth`), a second copy with other bytes, or non-finite values. */
  readonly onRefusedFrame?: (reason: RefusedFrame, claimedSender: string, round: RoundKey) => void;
}

export type RefusedFrame = 'auth' | 'signature' | 'conflict' | 'nonfinite';

export interface RoundSpec {
  readonly nc: NatsConnection;
  readonly key: RoundKey;
  readonly members: readonly string[];
  readonly observers: readonly string[];
  /** Node name of each member, in `members` order ('' for every member when none were given). */
  readonly nodes: readonly string[];
  /** Members then observers: a frame's `from` indexes this list. */
  readonly participants: readonly string[];
  readonly selfIndex: number;
  readonly length: number;
  readonly timeoutMs: number;
  readonly maxPayload: number;
  readonly signal: AbortSignal | undefined;
  readonly frameKey: Uint8Array | undefined;
  readonly encoding: GradientEncoding;
  readonly signingKey: KeyObject | undefined;
  readonly participantKeys: readonly KeyObject[] | undefined;
  readonly onRefusedFrame: RoundOptions['onRefusedFrame'];
}

const U32 = 2 ** 32;

// Ids never enter subjects (senders are indices there), so host names with dots are fine.
function checkId(field: string, v: string): void {
  if (typeof v !== 'string' || v.length === 0) {
    throw new AllReduceInputError(`${field} must be a non-empty id string, got ${JSON.stringify(v)}`);
  }
}

function checkU32(field: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v >= U32) {
    throw new AllReduceInputError(`${field} must be an integer in [0, 2^32), got ${v}`);
  }
}

function checkKeys(o: RoundOptions, participants: number, selfIndex: number): void {
  if (o.signingKey && (o.signingKey.type !== 'private' || o.signingKey.asymmetricKeyType !== 'ed25519')) {
    throw new AllReduceInputError('signingKey must be an Ed25519 private key');
  }
  const keys = o.participantKeys;
  if (keys === undefined) return;
  if (keys.length !== participants) {
    throw new AllReduceInputError(
      `participantKeys holds ${keys.length} keys for ${participants} members and observers: one each, in that order`,
    );
  }
  keys.forEach((k, i) => {
    if (k.type !== 'public' || k.asymmetricKeyType !== 'ed25519') {
      throw new AllReduceInputError(`participantKeys[${i}] must be an Ed25519 public key`);
    }
  });
  // Our own frames would be dropped by every peer: fail now rather than time out.
  if (!o.signingKey || !createPublicKey(o.signingKey).equals(keys[selfIndex]!)) {
    throw new AllReduceInputError(
      `participantKeys[${selfIndex}] (self) is not the public key of signingKey: peers would drop every frame we send`,
    );
  }
}

export function roundSpec(o: RoundOptions, self: string, length: number): RoundSpec {
  checkToken('runId', o.runId);
  checkU32('step', o.step);
  checkU32('generation', o.generation);
  checkU32('data.length', length);
  if (o.members.length === 0) throw new AllReduceInputError('members is empty: name at least one member');
  o.members.forEach((m, i) => {
    checkId(`members[${i}]`, m);
    if (i > 0 && !(o.members[i - 1]! < m)) {
      throw new AllReduceInputError(
        `members must be sorted ascending and unique (they fix the summation order): ` +
          `${JSON.stringify(o.members[i - 1])} then ${JSON.stringify(m)} at index ${i}`,
      );
    }
  });
  const observers = o.observers ?? [];
  const nodes = o.nodes ?? o.members.map(() => '');
  if (nodes.length !== o.members.length) {
    throw new AllReduceInputError(
      `nodes names ${nodes.length} nodes for ${o.members.length} members: give one node name per member`,
    );
  }
  nodes.forEach((x, i) => {
    if (typeof x !== 'string') throw new AllReduceInputError(`nodes[${i}] must be a string, got ${typeof x}`);
  });
  const participants = [...o.members, ...observers];
  observers.forEach((x, i) => {
    checkId(`observers[${i}]`, x);
  });
  if (new Set(participants).size !== participants.length) {
    throw new AllReduceInputError(`members and observers must be distinct ids: ${participants.join(', ')}`);
  }
  const selfIndex = participants.indexOf(self);
  if (selfIndex < 0) {
    throw new AllReduceInputError(`self ${JSON.stringify(self)} is not among members or observers`);
  }
  if (!(o.timeoutMs > 0) || !Number.isFinite(o.timeoutMs)) {
    throw new AllReduceInputError(`timeoutMs must be a positive number of milliseconds, got ${o.timeoutMs}`);
  }
  const encoding = o.encoding ?? DEFAULT_GRADIENT_ENCODING;
  if (!isGradientEncoding(encoding)) {
    throw new AllReduceInputError(
      `encoding must be one of ${GRADIENT_ENCODINGS.join(', ')}, got ${JSON.stringify(encoding)}`,
    );
  }
  checkKeys(o, participants.length, selfIndex);
  const serverMax = o.nc.info?.max_payload;
  const maxPayload = o.maxPayload ?? serverMax;
  if (maxPayload === undefined) {
    throw new AllReduceInputError(
      'maxPayload not given and the NATS connection has no server info (closed?)',
    );
  }
  if (serverMax !== undefined && maxPayload > serverMax) {
    throw new AllReduceInputError(`maxPayload ${maxPayload} exceeds the server's max_payload ${serverMax}`);
  }
  return {
    nc: o.nc,
    key: { runId: o.runId, step: o.step, generation: o.generation },
    members: o.members,
    observers,
    nodes,
    participants,
    selfIndex,
    length,
    timeoutMs: o.timeoutMs,
    maxPayload,
    signal: o.signal,
    frameKey: o.frameKey,
    encoding,
    signingKey: o.signingKey,
    participantKeys: o.participantKeys,
    onRefusedFrame: o.onRefusedFrame,
  };
}
