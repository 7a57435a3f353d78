// How a gradient vector is cut: into one shard per member (contiguous, sizes differing by at most one
// element), and each shard into chunks that fit one NATS message under the server's max_payload.
import { AllReduceInputError } from './errors.ts';
import { FRAME_OVERHEAD } from './frame.ts';

/** Elements [lo, hi) of the whole vector. */
export interface Span {
  readonly lo: number;
  readonly hi: number;
}

/** Elements per message so that header + payload (`perElement` bytes each) + tag <= maxPayload. */
export function chunkElements(maxPayload: number, perElement = 4): number {
  const n = Math.floor((maxPayload - FRAME_OVERHEAD) / perElement);
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new AllReduceInputError(
      `maxPayload ${maxPayload} leaves no room for data after the ${FRAME_OVERHEAD}-byte frame header and tag; ` +
        'raise max_payload on the NATS server',
    );
  }
  return n;
}

/** Every member derives the same layout from (length, shards, chunk size), so no layout is sent. */
export class Layout {
  constructor(
    readonly length: number,
    readonly shards: number,
    readonly chunkSize: number,
  ) {}

  shard(k: number): Span {
    return {
      lo: Math.floor((k * this.length) / this.shards),
      hi: Math.floor(((k + 1) * this.length) / this.shards),
    };
  }

  /** 0 for an empty shard (fewer elements than members): nothing is sent for it. */
  chunkCount(k: number): number {
    const { lo, hi } = this.shard(k);
    return Math.ceil((hi - lo) / this.chunkSize);
  }

  chunk(k: number, j: number): Span {
    const { lo, hi } = this.shard(k);
    const start = lo + j * this.chunkSize;
    return { lo: start, hi: Math.min(hi, start + this.chunkSize) };
  }
}
