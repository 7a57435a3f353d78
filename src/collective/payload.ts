// The float32 payload of a data frame as an algorithm sees it: it can only be read by copying it
// into an aligned Float32Array, and that copy refuses NaN and ±Infinity, naming the sender. So every
// byte an algorithm sums or forwards has been checked once, on data that is already in cache,
// instead of in a separate pass over the message (the message bytes may be unaligned for float32).
import { firstNonFinite } from './frame.ts';

export class FramePayload {
  constructor(
    private readonly bytes: Uint8Array,
    /** The error to throw for a non-finite value (it names the sender, shard and chunk). */
    private readonly refuse: (value: number) => Error,
  ) {}

  /** float32 elements in the payload. */
  get elements(): number {
    return this.bytes.length / 4;
  }

  /** Copies the payload into `dst` from element `at`; returns that range of `dst`. Throws on NaN or ±Inf. */
  copyTo(dst: Float32Array, at: number): Float32Array {
    new Uint8Array(dst.buffer, dst.byteOffset + at * 4, this.bytes.length).set(this.bytes);
    const view = dst.subarray(at, at + this.elements);
    const bad = firstNonFinite(view);
    if (bad >= 0) throw this.refuse(view[bad]!);
    return view;
  }
}
