// Outgoing frame buffers, reused from one round to the next on the same connection: a round sends
// about a gradient's worth of frames, and fresh multi-MiB buffers each step cost page faults and
// garbage collection (docs/collective.md, "Per-member cost"). The client may hold a published buffer
// until it writes it to the socket; a PONG answering a PING sent after the publishes proves the
// server has read them (NATS keeps a connection's commands in order), so only then is a buffer reused.
import type { NatsConnection } from '@nats-io/transport-node';

/** Bytes kept for reuse per connection at most; beyond that buffers are left to the garbage collector. */
const MAX_POOLED_BYTES = 256 * 2 ** 20;

interface Pool {
  readonly free: Map<number, Uint8Array[]>;
  bytes: number;
}

const pools = new WeakMap<NatsConnection, Pool>();

/** The frame buffers of one round on `nc`. */
export class FrameBuffers {
  private readonly pool: Pool;
  private readonly inFlight: Uint8Array[] = [];

  constructor(private readonly nc: NatsConnection) {
    const pool = pools.get(nc) ?? { free: new Map(), bytes: 0 };
    pools.set(nc, pool);
    this.pool = pool;
  }

  /** A buffer of exactly `size` bytes, arbitrary contents, for one frame that `sent` then follows. */
  take(size: number): Uint8Array {
    const reused = this.pool.free.get(size)?.pop();
    if (!reused) return new Uint8Array(size);
    this.pool.bytes -= size;
    return reused;
  }

  /** `frame` was published: it is not reused before release() is confirmed. */
  sent(frame: Uint8Array): void {
    this.inFlight.push(frame);
  }

  /** After the round: the sent buffers go back to the pool once the server answers a flush. */
  release(): void {
    const frames = this.inFlight.splice(0);
    if (frames.length === 0 || this.nc.isClosed()) return;
    const giveBack = () => {
      for (const f of frames) {
        if (this.pool.bytes + f.length > MAX_POOLED_BYTES) return;
        const list = this.pool.free.get(f.length) ?? [];
        list.push(f);
        this.pool.free.set(f.length, list);
        this.pool.bytes += f.length;
      }
    };
    // A connection that closes first never answers: its buffers are simply not reused.
    this.nc.flush().then(giveBack, () => {});
  }
}
