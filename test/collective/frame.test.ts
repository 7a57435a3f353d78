import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chunkElements, Layout } from '../../src/collective/chunking.ts';
import { AllReduceInputError } from '../../src/collective/errors.ts';
import {
  decodeFrame,
  encodeFrame,
  FRAME_OVERHEAD,
  FrameKind,
  firstNonFinite,
  frameBytes,
  frameMac,
  framePayload,
  HEADER_BYTES,
  MAC_BYTES,
  runHash,
  TAG_BYTES,
  verifyFrame,
} from '../../src/collective/frame.ts';
import { KEYED_VECTORS, VECTOR_KEY, vectorInput } from './blake3-vectors.ts';

const header = {
  kind: FrameKind.shardReduce,
  runHash: runHash('run-a'),
  step: 4_000_000_000,
  generation: 3,
  from: 4,
  shard: 2,
  chunk: 7,
  chunkCount: 9,
  offset: 123_456,
  totalLength: 999_999,
  encoding: 'f32' as const,
};

describe('all-reduce frame', () => {
  it('round-trips every header field and the payload bytes', () => {
    const payload = new Float32Array([1.5, -2, 3e-30]);
    const msg = encodeFrame(header, payload);
    assert.equal(msg.length, HEADER_BYTES + 12 + TAG_BYTES);
    assert.deepEqual(decodeFrame(msg), header);
    assert.deepEqual(new Float32Array(framePayload(msg).slice().buffer), payload);
  });

  it('carries bf16 payloads at 2 bytes per value, named in the header', () => {
    const msg = encodeFrame({ ...header, encoding: 'bf16' }, new Float32Array([1.5, -2, 3]));
    assert.equal(msg.length, HEADER_BYTES + 6 + TAG_BYTES);
    assert.deepEqual(decodeFrame(msg), { ...header, encoding: 'bf16' });
    assert.deepEqual([...new Uint16Array(framePayload(msg).slice().buffer)], [0x3fc0, 0xc000, 0x4040]);
  });

  it('writes every byte of a reused buffer: the same frame as a fresh one', () => {
    const payload = new Float32Array([1.5, -2, 3e-30]);
    const key = new Uint8Array(32).fill(9);
    const dirty = new Uint8Array(frameBytes(payload.byteLength)).fill(0xff);
    const reused = encodeFrame(header, payload, key, dirty);
    assert.equal(reused, dirty);
    assert.equal(Buffer.compare(reused, encodeFrame(header, payload, key)), 0);
    assert.throws(() => encodeFrame(header, payload, key, new Uint8Array(dirty.length + 1)), RangeError);
  });

  it('drops bytes that are not a frame of this protocol version', () => {
    const msg = encodeFrame(header);
    assert.equal(decodeFrame(msg.subarray(0, HEADER_BYTES - 1)), undefined);
    for (const at of [0, 4, 5]) {
      const bad = msg.slice();
      bad[at] = 0xee;
      assert.equal(decodeFrame(bad), undefined, `byte ${at} altered`);
    }
  });

  it('carries a MAC of header and payload that only the key verifies', () => {
    const key = new Uint8Array(32).fill(7);
    const msg = encodeFrame(header, new Float32Array([1, 2]), key);
    assert.equal(verifyFrame(msg, key), true);
    assert.equal(verifyFrame(msg, new Uint8Array(32).fill(8)), false, 'another key');
    assert.equal(verifyFrame(encodeFrame(header, new Float32Array([1, 2])), key), false, 'no key');
    for (const at of [12, HEADER_BYTES, msg.length - 1]) {
      const bad = msg.slice();
      bad[at]! ^= 1;
      assert.equal(verifyFrame(bad, key), false, `byte ${at} altered`);
    }
  });

  it("computes the MAC as BLAKE3's keyed hash: its published test vectors", () => {
    for (const [length, expected] of KEYED_VECTORS) {
      const input = vectorInput(length);
      // Split where a frame splits (header, payload): the MAC covers their concatenation.
      const cut = Math.min(HEADER_BYTES, length);
      const mac = frameMac(VECTOR_KEY, input.subarray(0, cut), input.subarray(cut));
      assert.equal(Buffer.from(mac).toString('hex'), expected, `input of ${length} bytes`);
      assert.equal(mac.length, MAC_BYTES);
    }
    // The key is used as given, after other keys: the per-key hasher is reset, not reused dirty.
    frameMac(new Uint8Array(32).fill(9), new Uint8Array(10), new Uint8Array(5000));
    const input = vectorInput(1025);
    assert.equal(
      Buffer.from(frameMac(VECTOR_KEY, input.subarray(0, 44), input.subarray(44))).toString('hex'),
      KEYED_VECTORS[2]![1],
    );
  });

  it("puts the MAC of a frame's header and payload in its last bytes", () => {
    const key = new Uint8Array(32).fill(3);
    const msg = encodeFrame(header, new Float32Array([1, 2, 3]), key);
    const mac = frameMac(key, msg.subarray(0, HEADER_BYTES), framePayload(msg));
    assert.deepEqual(msg.subarray(msg.length - MAC_BYTES), new Uint8Array(mac));
  });

  it('refuses a frame key that is not 32 bytes', () => {
    assert.throws(() => encodeFrame(header, new Float32Array([1]), new Uint8Array(16)), /16 bytes, not 32/);
  });

  it('tells run ids apart by hash', () => {
    assert.notEqual(runHash('run-a'), runHash('run-b'));
    assert.equal(runHash('run-a'), runHash('run-a'));
  });
});

describe('vector layout', () => {
  it('cuts any length into contiguous shards and chunks that fit max_payload', () => {
    const maxPayload = 4096;
    const size = chunkElements(maxPayload);
    assert.ok(FRAME_OVERHEAD + 4 * size <= maxPayload && FRAME_OVERHEAD + 4 * (size + 1) > maxPayload);
    for (const [length, shards] of [
      [0, 3],
      [2, 5],
      [10_007, 3],
      [size * 6, 2],
      [size * 6 + 1, 7],
    ] as const) {
      const layout = new Layout(length, shards, size);
      let next = 0;
      for (let k = 0; k < shards; k++) {
        for (let j = 0; j < layout.chunkCount(k); j++) {
          const c = layout.chunk(k, j);
          assert.equal(c.lo, next, `length ${length} shard ${k} chunk ${j} starts where the last ended`);
          assert.ok(c.hi > c.lo && c.hi - c.lo <= size);
          next = c.hi;
        }
        assert.equal(next, layout.shard(k).hi);
      }
      assert.equal(next, length);
    }
  });

  it('refuses a max_payload with no room for data', () => {
    assert.throws(() => chunkElements(FRAME_OVERHEAD + 3), AllReduceInputError);
  });
});

describe('finiteness of a payload', () => {
  const FLT_MAX = 3.4028234663852886e38;
  const FLT_TRUE_MIN = 2 ** -149;

  it('finds NaN and ±Infinity wherever they are, and the first of several', () => {
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      for (const at of [0, 1, 500, 1022, 1023]) {
        const xs = new Float32Array(1024).fill(1.5);
        xs[at] = bad;
        assert.equal(firstNonFinite(xs), at, `${bad} at ${at}`);
        if (at < 1023) xs[1023] = Number.NaN;
        assert.equal(firstNonFinite(xs), at, `${bad} at ${at}, NaN after it`);
      }
    }
  });

  it('passes every finite float32, up to the largest and down to the smallest subnormal', () => {
    const edges = [FLT_MAX, -FLT_MAX, FLT_TRUE_MIN, -FLT_TRUE_MIN, 0, -0, 1, -1];
    assert.equal(firstNonFinite(Float32Array.from(edges)), -1);
    assert.equal(firstNonFinite(new Float32Array(0)), -1);
    // Just beyond FLT_MAX rounds to Infinity in float32: the other side of the boundary.
    assert.equal(firstNonFinite(Float32Array.of(1, FLT_MAX * (1 + 2 ** -23))), 1);
  });
});
