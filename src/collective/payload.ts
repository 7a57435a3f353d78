// The float32 payload of a data frame as an algorithm sees it. Either copied into an aligned array
// and checked at once (copyTo), or read in place (floats) when the message bytes are 4-byte aligned,
// which large NATS messages are (the client assembles each in a buffer of its own, header at 0), and
// checked by the caller's own pass over it (a sum whose result is not finite: check()). Either way
// no byte an algorithm forwards has escaped a check for NaN and ±Infinity that names the sender.
import { copyChecked, firstNonFinite } from './float-sum.ts';
import { bytesPerElement, decodeBf16, type GradientEncoding } from './gradient-encoding.ts';

export class FramePayload {
  constructor(
    private readonly bytes: Uint8Array,
    private readonly encoding: GradientEncoding,
    /** The error to throw for a non-finite value (it names the sender, shard and chunk). */
    private readonly refuse: (value: number) => Error,
  ) {}

  /** Elements in the payload. */
  get elements(): number {
    return this.bytes.length / bytesPerElement(this.encoding);
  }

  /** Copies the payload into `dst` from element `at`; returns that range of `dst`. Throws on NaN or ±Inf. */
  copyTo(dst: Float32Array, at: number): Float32Array {
    const { buffer, byteOffset, length } = this.bytes;
    if (this.encoding === 'f32' && byteOffset % 4 === 0) {
      // Aligned: copy and check in one pass.
      const view = dst.subarray(at, at + length / 4);
      const bad = copyChecked(view, new Float32Array(buffer, byteOffset, length / 4));
      if (bad >= 0) throw this.refuse(view[bad]!);
      return view;
    }
    const view = this.copy(dst, at);
    this.check(view);
    return view;
  }

  /**
   * The payload as float32, NOT yet checked: a view of the message when its bytes are aligned
   * float32 (no copy), else a copy (bf16: decoded) in `dst` from element `at`. The caller must pass whatever it derives from it
   * through a finiteness test and, when that fails, call check() on this view before using it.
   */
  floats(dst: Float32Array, at: number): Float32Array {
    const { buffer, byteOffset, length } = this.bytes;
    if (this.encoding === 'f32' && byteOffset % 4 === 0)
      return new Float32Array(buffer, byteOffset, length / 4);
    return this.copy(dst, at);
  }

  /** Throws the sender's refusal when `view` (this payload's floats) holds NaN or ±Inf. */
  check(view: Float32Array): void {
    const bad = firstNonFinite(view);
    if (bad >= 0) throw this.refuse(view[bad]!);
  }

  private copy(dst: Float32Array, at: number): Float32Array {
    const view = dst.subarray(at, at + this.elements);
    if (this.encoding === 'bf16') decodeBf16(this.bytes, view);
    else new Uint8Array(dst.buffer, dst.byteOffset + at * 4, this.bytes.length).set(this.bytes);
    return view;
  }
}
