// One all-reduce round as seen by one participant: its subscriptions, the ready barrier, the
// deadline, and the ways it ends (complete, timeout, disconnect, peer abort, cancel). The
// algorithms (shard-owner.ts, ring.ts) and observe.ts plug their data handling into it.
import type { Subscription } from '@nats-io/transport-node';
import { chunkElements, Layout } from './chunking.ts';
import { isConnected, onConnectionEvent } from './connection-watch.ts';
import {
  AllReduceCancelledError,
  AllReduceDisconnectedError,
  AllReducePeerAbortedError,
  AllReduceProtocolError,
  AllReduceTimeoutError,
  type MissingPart,
} from './errors.ts';
import { type SignedFrame, signedFrameOf } from './evidence.ts';
import {
  decodeFrame,
  encodeFrame,
  type FrameHeader,
  FrameKind,
  frameBytes,
  framePayload,
  frameTag,
  runHash,
  SIGNATURE_BYTES,
  verifyFrame,
  verifyFrameSignature,
} from './frame.ts';
import { FrameBuffers } from './frame-buffers.ts';
import { bytesPerElement } from './gradient-encoding.ts';
import { FramePayload } from './payload.ts';
import type { RoundSpec } from './round-spec.ts';
import { ctlSubject } from './subjects.ts';

/** What an algorithm does with a data frame of its round (checked: see Round.subscribe). */
export type DataHandler = (h: FrameHeader, payload: FramePayload) => void;
const CTL_KINDS: ReadonlySet<number> = new Set([FrameKind.ready, FrameKind.abort]);

export class Round {
  readonly layout: Layout;
  readonly self: string;
  readonly isMember: boolean;
  /** Frames dropped because their header named another run, step, generation or sender. */
  ignoredFrames = 0;
  /** Bytes this participant published (frames, control included) and NATS delivered to it. */
  bytesSent = 0;
  bytesReceived = 0;
  /** Frames dropped because their tag did not verify under the run's frame key (forged). */
  forgedFrames = 0;
  /** The signed parts of the first copy of each data chunk, by kind, sender, shard and chunk. */
  private readonly firstCopies = new Map<string, SignedFrame>();
  /** Set by the algorithm: the data it still waits for, reported on timeout. */
  missingData: () => MissingPart[] = () => [];

  private readonly hash: number;
  private readonly frames: FrameBuffers;
  private readonly subs: Subscription[] = [];
  private readonly cleanups: (() => void)[] = [];
  private readonly readyFrom = new Set<number>();
  private settled = false;
  private announced = false;
  private reannouncePending = false;
  private barrierPassed = false;
  private onBarrier: () => void = () => {};
  private onReconnect: () => void = () => {};
  private resolveDone: () => void = () => {};
  private rejectDone: (e: Error) => void = () => {};
  private readonly done: Promise<void>;

  /** `shards`: how many shards the vector is cut into (default one per member; algorithm.ts). */
  constructor(
    readonly spec: RoundSpec,
    shards = spec.members.length,
  ) {
    const perElement = bytesPerElement(spec.encoding);
    this.layout = new Layout(spec.length, shards, chunkElements(spec.maxPayload, perElement));
    this.self = spec.participants[spec.selfIndex]!;
    this.isMember = spec.selfIndex < spec.members.length;
    this.hash = runHash(spec.key.runId);
    this.frames = new FrameBuffers(spec.nc);
    this.done = new Promise((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
  }

  /**
   * Runs the round: subscribes control traffic, flushes so the server holds every subscription made
   * so far, announces ready, waits until every other participant announced (members only), then
   * calls `start`. Resolves when the algorithm calls complete(); rejects with a typed error.
   * Precondition, enforced here: a participant sends data only after every receiver is subscribed.
   */
  run(start: () => void): Promise<void> {
    const { key, nc, timeoutMs, signal } = this.spec;
    const timer = setTimeout(() => {
      // Still waiting for the reconnect: say so rather than blame peers we cannot hear.
      if (!isConnected(nc))
        this.fail(new AllReduceDisconnectedError(key, `down for the whole ${timeoutMs} ms`));
      else this.fail(new AllReduceTimeoutError(key, timeoutMs, this.missing()));
    }, timeoutMs);
    this.cleanups.push(() => clearTimeout(timer));
    this.cleanups.push(
      onConnectionEvent(nc, (e) => {
        if (e === 'reconnect') this.onReconnect();
        else this.fail(new AllReduceDisconnectedError(key, e === 'close' ? 'closed' : 'lost'), true);
      }),
    );
    if (signal) {
      const onAbort = () => this.fail(new AllReduceCancelledError(key), true);
      if (signal.aborted) onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      this.cleanups.push(() => signal.removeEventListener('abort', onAbort));
    }
    if (!this.settled) this.begin(start).catch((err: Error) => this.fail(this.asRoundError(err), true));
    return this.done;
  }

  private async begin(start: () => void): Promise<void> {
    const { nc, key } = this.spec;
    // A retry right after a disconnect waits (within the deadline) for the client to reconnect.
    if (!isConnected(nc)) await new Promise<void>((r) => (this.onReconnect = r));
    this.listen(ctlSubject(key, '*'), 'ctl', (h, msg) => this.onCtl(h, framePayload(msg)));
    await nc.flush();
    if (this.settled) return;
    this.announced = true;
    this.sendCtl(FrameKind.ready);
    if (this.isMember && this.readyFrom.size < this.spec.participants.length - 1) {
      await new Promise<void>((r) => (this.onBarrier = r));
    }
    if (this.settled) return;
    this.barrierPassed = true;
    start();
  }

  private onCtl(h: FrameHeader, payload: Uint8Array): void {
    if (h.from === this.spec.selfIndex) return; // our own echo
    if (h.kind === FrameKind.abort) {
      if (h.from < this.spec.members.length) {
        const reason = new TextDecoder().decode(payload);
        this.fail(new AllReducePeerAbortedError(this.spec.key, this.spec.participants[h.from]!, reason));
      }
      return;
    }
    if (this.readyFrom.has(h.from)) return;
    this.readyFrom.add(h.from);
    // The newcomer may have subscribed after our announcement went out: say it again, once per
    // burst. Of any two participants, the later subscriber hears the earlier one this way.
    if (this.announced && !this.reannouncePending) {
      this.reannouncePending = true;
      queueMicrotask(() => {
        this.reannouncePending = false;
        if (!this.settled) this.sendCtl(FrameKind.ready);
      });
    }
    if (this.readyFrom.size === this.spec.participants.length - 1) this.onBarrier();
  }

  /**
   * Subscribes `subject` for data frames of `kind`. Frames of another round or from a non-participant
   * are counted and dropped; forged ones too; the rest must match our layout exactly, and a second
   * copy of a chunk is dropped (same bytes) or refused. The handler reads the payload only through
   * FramePayload.copyTo, which refuses non-finite values naming the sender.
   */
  subscribe(subject: string, kind: FrameKind, handler: DataHandler): void {
    const { length, participants, key } = this.spec;
    this.listen(subject, kind, (h, msg) => {
      const payload = framePayload(msg);
      this.checkLayout(h, payload, length, msg);
      if (!this.firstCopy(h, msg)) return;
      const member = participants[h.from]!;
      handler(
        h,
        new FramePayload(payload, this.spec.encoding, (value) => {
          this.spec.onRefusedFrame?.('nonfinite', member, key);
          return new AllReduceProtocolError(
            key,
            member,
            `sent a non-finite value (${value}) in shard ${h.shard} chunk ${h.chunk}`,
            { reason: 'nonfinite', frame: signedFrameOf(msg), payload: payload.slice() },
          );
        }),
      );
    });
  }

  /** Frames on `subject` of `kind` ('ctl': ready and abort) that are of this round and verify. */
  private listen(
    subject: string,
    kind: FrameKind | 'ctl',
    onFrame: (h: FrameHeader, msg: Uint8Array) => void,
  ) {
    const { nc, key, participants } = this.spec;
    if (this.settled) return; // settle() has already unsubscribed everything
    const sub = nc.subscribe(subject, {
      callback: (err, msg) => {
        if (this.settled) return;
        this.bytesReceived += msg?.data.length ?? 0;
        if (err) {
          this.fail(new AllReduceDisconnectedError(key, `subscription ${subject} failed (${err.message})`));
          return;
        }
        const h = decodeFrame(msg.data);
        const ours =
          h !== undefined &&
          (kind === 'ctl' ? CTL_KINDS.has(h.kind) : h.kind === kind) &&
          h.runHash === this.hash &&
          h.step === key.step &&
          h.generation === key.generation &&
          h.from < participants.length &&
          msg.subject.endsWith(`.${h.from}`);
        if (!ours) {
          this.ignoredFrames++;
          return;
        }
        // Not made with the run's key: dropped and counted, never acted on. (Aborting the round
        // would let anyone who can publish stall every round; the genuine frame still counts.)
        if (!verifyFrame(msg.data, this.spec.frameKey)) {
          this.forgedFrames++;
          this.spec.onRefusedFrame?.('auth', participants[h.from]!, key);
          return;
        }
        // Made with the run key but not signed by the member it names: another holder of the key
        // speaking for it. Dropped like a forgery, and never held against the member it names.
        const senderKey = this.spec.participantKeys?.[h.from];
        if (senderKey && !verifyFrameSignature(msg.data, senderKey)) {
          this.forgedFrames++;
          this.spec.onRefusedFrame?.('signature', participants[h.from]!, key);
          return;
        }
        try {
          onFrame(h, msg.data);
        } catch (e) {
          this.fail(this.asRoundError(e as Error), true);
        }
      },
    });
    this.subs.push(sub);
  }

  /**
   * Whether this is the first copy of its chunk (the second of the same bytes is ignored). A second
   * copy with other bytes, both made with the run's key, is a protocol error naming the sender.
   */
  private firstCopy(h: FrameHeader, msg: Uint8Array): boolean {
    const id = `${h.kind}:${h.from}:${h.shard}:${h.chunk}`;
    const first = this.firstCopies.get(id);
    const tag = frameTag(msg);
    if (!first) {
      this.firstCopies.set(id, signedFrameOf(msg));
      return true;
    }
    if (Buffer.compare(first.mac, tag.subarray(SIGNATURE_BYTES)) === 0) return false;
    const member = this.spec.participants[h.from]!;
    this.spec.onRefusedFrame?.('conflict', member, this.spec.key);
    throw new AllReduceProtocolError(
      this.spec.key,
      member,
      `sent two different copies of shard ${h.shard} chunk ${h.chunk}`,
      { reason: 'conflict', frame: first, conflicting: signedFrameOf(msg) },
    );
  }

  private checkLayout(h: FrameHeader, payload: Uint8Array, length: number, msg: Uint8Array): void {
    const member = this.spec.participants[h.from]!;
    const fail = (detail: string) =>
      new AllReduceProtocolError(this.spec.key, member, detail, {
        reason: 'layout',
        frame: signedFrameOf(msg),
      });
    const { encoding } = this.spec;
    if ((h.encoding ?? 'f32') !== encoding) {
      throw fail(
        `sends ${h.encoding} gradients; ${this.self} uses ${encoding}: every participant must use the same encoding (--allreduce_encoding)`,
      );
    }
    if (h.totalLength !== length) {
      throw fail(`sends a vector of ${h.totalLength} elements; ${this.self} has ${length}`);
    }
    const { shards } = this.layout;
    const c = h.shard < shards && h.chunk < h.chunkCount ? this.layout.chunk(h.shard, h.chunk) : undefined;
    if (
      !c ||
      h.chunkCount !== this.layout.chunkCount(h.shard) ||
      h.offset !== c.lo ||
      payload.length !== (c.hi - c.lo) * bytesPerElement(encoding)
    ) {
      throw fail(
        `sends shard ${h.shard} chunk ${h.chunk}/${h.chunkCount} at offset ${h.offset} (${payload.length} bytes), ` +
          'which is not our chunking: every participant must use the same maxPayload',
      );
    }
  }

  /** Publishes chunk `chunk` of `shard` (elements from our layout) on `subject`. */
  sendData(subject: string, kind: FrameKind, shard: number, chunk: number, payload: Float32Array): void {
    const { key } = this.spec;
    const frame = encodeFrame(
      {
        kind,
        runHash: this.hash,
        step: key.step,
        generation: key.generation,
        from: this.spec.selfIndex,
        shard,
        chunk,
        chunkCount: this.layout.chunkCount(shard),
        offset: this.layout.chunk(shard, chunk).lo,
        totalLength: this.spec.length,
        encoding: this.spec.encoding,
      },
      payload,
      this.spec.frameKey,
      this.frames.take(frameBytes(payload.length * bytesPerElement(this.spec.encoding))),
      this.spec.signingKey,
    );
    this.bytesSent += frame.length;
    this.spec.nc.publish(subject, frame);
    this.frames.sent(frame);
  }

  private sendCtl(kind: FrameKind, text?: string): void {
    const { key, nc, selfIndex, length } = this.spec;
    const { encoding } = this.spec;
    const header = {
      kind,
      runHash: this.hash,
      step: key.step,
      generation: key.generation,
      from: selfIndex,
      encoding,
    };
    const rest = { shard: 0, chunk: 0, chunkCount: 0, offset: 0, totalLength: length };
    const payload = text === undefined ? undefined : new TextEncoder().encode(text);
    const frame = encodeFrame(
      { ...header, ...rest },
      payload,
      this.spec.frameKey,
      undefined,
      this.spec.signingKey,
    );
    this.bytesSent += frame.length;
    nc.publish(ctlSubject(key, selfIndex), frame);
  }

  /** What the round still waits for: readies before the barrier, then the algorithm's data. */
  private missing(): MissingPart[] {
    if (this.isMember && !this.barrierPassed) {
      return this.spec.participants
        .map((member, i) => ({ member, i }))
        .filter(({ i }) => i !== this.spec.selfIndex && !this.readyFrom.has(i))
        .map(({ member }) => ({ member, phase: 'ready', shard: 0, chunks: [] }));
    }
    return this.missingData();
  }

  complete(): void {
    this.settle();
  }

  /** Runs `f` once when the round ends, however it ends (after which no handler runs). */
  onSettle(f: () => void): void {
    if (this.settled) f();
    else this.cleanups.push(f);
  }

  /** Ends the round with `err`; `tellPeers` (local causes only) publishes an abort so peers stop waiting. */
  fail(err: Error, tellPeers = false): void {
    if (this.settled) return;
    if (tellPeers && this.isMember) {
      try {
        this.sendCtl(FrameKind.abort, err.message);
      } catch {
        // Best effort: the connection is already closed; peers will time out instead.
      }
    }
    this.settle(err);
  }

  private settle(err?: Error): void {
    if (this.settled) return;
    this.settled = true;
    for (const c of this.cleanups) c();
    for (const s of this.subs) s.unsubscribe();
    this.frames.release();
    if (err) this.rejectDone(err);
    else this.resolveDone();
  }

  private asRoundError(err: Error): Error {
    if (this.spec.nc.isClosed())
      return new AllReduceDisconnectedError(this.spec.key, `closed (${err.message})`);
    return err;
  }
}
