// The messages a worker sends on the Session stream, one function each (what the coordinator sends:
// messages.ts). A `lora-mpt worker` sends them over gRPC, finetune's in-process worker as objects.
import type { FrameEvidence } from '../collective/evidence.ts';
import { envelope } from './envelope.ts';
import { evidenceToWire, wireBytes } from './frame-evidence.ts';
import { PROTOCOL_VERSION } from './handshake.ts';
import type { ContributionNorm, ReduceStart, WireMicroBatch, WorkerMessage } from './wire.ts';

const message = envelope<WorkerMessage>();

/** Longest error text a ReduceResult carries (the coordinator prints at most 512 characters of it). */
const MAX_ERROR_CHARS = 2048;

type Round = Pick<ReduceStart, 'step' | 'generation'>;

/** The first message of a stream: who this worker is and what it can hold (joins the coordinator's run). */
export const helloMessage = (
  workerId: string,
  c: { readonly backend: string; readonly maxInFlight: number; readonly nodeName?: string },
) =>
  message('hello', {
    protocolVersion: PROTOCOL_VERSION,
    runId: '',
    workerId,
    capabilities: {
      backend: c.backend,
      deviceMemoryBytes: 0,
      maxInFlight: c.maxInFlight,
      nodeName: c.nodeName ?? '',
    },
  });

export const workerHeartbeatMessage = (unixMs: number) => message('heartbeat', { unixMs });

/**
 * The base model the run names is loaded; `modelFingerprint` is checked against the run's.
 * `framePublicKey`: raw Ed25519 public key of the key that signs this worker's all-reduce frames.
 */
export const readyMessage = (modelFingerprint: string, framePublicKey?: Uint8Array) =>
  message('ready', {
    modelFingerprint,
    // Named even when absent: the codec reads every field back.
    framePublicKey: framePublicKey ? wireBytes(framePublicKey) : undefined,
  });

/** Sent before a failed ReduceResult that blames `accused`: the frame proving it (evidence.ts). */
export const frameEvidenceMessage = (round: Round, accused: string, evidence: FrameEvidence) =>
  message('evidence', {
    step: round.step,
    generation: round.generation,
    accused,
    evidence: evidenceToWire(evidence),
  });

export const creditMessage = (credits: number) => message('credit', { credits });

/** What computing micro-batch `mb` gave (gradNorm 0 for an eval micro-batch). */
export const resultMessage = (
  mb: Pick<WireMicroBatch, 'id' | 'step' | 'kind'>,
  r: { readonly lossSum: number; readonly supervisedTokens: number; readonly gradNorm: number },
) =>
  message('result', {
    id: mb.id,
    step: mb.step,
    kind: mb.kind,
    lossSum: r.lossSum,
    supervisedTokens: r.supervisedTokens,
    gradNorm: r.gradNorm,
  });

/** The revoked micro-batches of `step` still queued here, now given back (the one computing is not). */
export const revokedMessage = (step: number, ids: readonly number[]) =>
  message('revoked', { step, ids: [...ids] });

/**
 * The round reduced: checksum and norm of the final gradient, and of this replica's state; and what
 * this member measured of each contributor as a shard owner (empty when its algorithm has none).
 */
export const reducedMessage = (
  round: Round,
  r: {
    readonly checksum: string;
    readonly gradNorm: number;
    readonly stateChecksum: string;
    readonly contributions?: readonly ContributionNorm[];
  },
) =>
  message('reduceResult', {
    step: round.step,
    generation: round.generation,
    checksum: r.checksum,
    gradNorm: r.gradNorm,
    stateChecksum: r.stateChecksum,
    error: '',
    blame: '',
    contributions: (r.contributions ?? []).map((c) => ({ member: c.member, sumSquares: c.sumSquares })),
  });

/** The round failed here: why, and the member whose data failed a check when one did (`blame`). */
export const reduceFailedMessage = (round: Round, stateChecksum: string, error: string, blame = '') =>
  message('reduceResult', {
    step: round.step,
    generation: round.generation,
    checksum: '',
    gradNorm: 0,
    stateChecksum,
    error: error.slice(0, MAX_ERROR_CHARS),
    blame,
    contributions: [],
  });
