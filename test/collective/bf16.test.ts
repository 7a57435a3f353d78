import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/transport-node';
import { decodeBf16, encodeBf16, roundToBf16 } from '../../src/collective/gradient-encoding.ts';
import {
  type AllReduceAlgorithm,
  AllReduceProtocolError,
  allReduceSum,
  type GradientEncoding,
  observeAllReduce,
  type RoundReport,
} from '../../src/collective/index.ts';
import { type NatsServer, startNats } from '../support/nats.ts';
import { bytesOf, connectMembers, memberIds, randomGradients } from './members.ts';

// torch's float32 -> bfloat16 conversion of 2,226 bit patterns (test/fixtures/bf16/recipe.json).
const fixture = JSON.parse(
  readFileSync(new URL('../fixtures/bf16/rounding.json', import.meta.url), 'utf8'),
) as { f32_bits: number[]; bf16_bits: number[] };

describe('bfloat16 gradient encoding', () => {
  const input = new Float32Array(Uint32Array.from(fixture.f32_bits).buffer);
  const isNaNBits = (b: number) => (b & 0x7f80) === 0x7f80 && (b & 0x7f) !== 0;

  it('rounds to nearest, ties to even, as torch does (NaN stays NaN)', () => {
    const wire = new Uint8Array(input.length * 2);
    encodeBf16(input, wire);
    const got = new Uint16Array(wire.buffer);
    for (let i = 0; i < input.length; i++) {
      const want = fixture.bf16_bits[i]!;
      const what = `f32 0x${fixture.f32_bits[i]!.toString(16)}`;
      if (isNaNBits(want)) assert.ok(isNaNBits(got[i]!), `${what}: NaN, got 0x${got[i]!.toString(16)}`);
      else assert.equal(got[i], want, what);
    }
  });

  it('decodes exactly, at any byte offset, and roundToBf16 keeps what a receiver decodes', () => {
    const wire = new Uint8Array(input.length * 2 + 1);
    encodeBf16(input, wire.subarray(1)); // odd offset: the byte-wise path
    const decoded = new Float32Array(input.length);
    decodeBf16(wire.subarray(1), decoded);
    const rounded = input.slice();
    roundToBf16(rounded);
    for (let i = 0; i < input.length; i++) {
      const want = new Float32Array(new Uint32Array([fixture.bf16_bits[i]! << 16]).buffer)[0]!;
      if (Number.isNaN(want)) {
        assert.ok(Number.isNaN(decoded[i]!) && Number.isNaN(rounded[i]!));
        continue;
      }
      assert.ok(Object.is(decoded[i], want), `decoded element ${i}: ${decoded[i]} vs ${want}`);
      assert.ok(Object.is(rounded[i], want), `rounded element ${i}: ${rounded[i]} vs ${want}`);
    }
  });
});

describe('all-reduce with bfloat16 on the wire', () => {
  const n = 3;
  const length = 5000;
  const members = memberIds(n);
  const xs = randomGradients(n, length, 2222);
  let server: NatsServer;
  let conns: NatsConnection[];
  let round = 0;
  before(async () => {
    server = await startNats();
    conns = await connectMembers(server.url, n + 1);
  });
  after(async () => {
    await Promise.all(conns.map((c) => c.close()));
    await server.stop();
  });

  /** Every member's and an observer's result, and the bytes each member sent. */
  async function reduce(algorithm: AllReduceAlgorithm, encodings: readonly GradientEncoding[]) {
    const key = { runId: 'bf16', step: 1, generation: round++ };
    const sent: number[] = [];
    // 4 KiB messages: several chunks per shard, so chunking follows the encoding.
    // Hierarchical: two nodes of unequal size.
    const nodes = algorithm === 'hierarchical' ? { nodes: ['a', 'b', 'a'] } : {};
    const common = {
      ...key,
      members,
      observers: ['coord'],
      timeoutMs: 5000,
      maxPayload: 4096,
      algorithm,
      ...nodes,
    };
    const onReport = (r: RoundReport) => sent.push(r.bytesSent);
    const all = await Promise.allSettled([
      ...members.map((self, i) =>
        allReduceSum({ ...common, nc: conns[i]!, self, data: xs[i]!, encoding: encodings[i]!, onReport }),
      ),
      observeAllReduce({ ...common, nc: conns[n]!, self: 'coord', length, encoding: encodings[0]! }),
    ]);
    return { all, sent: sent.reduce((a, b) => a + b, 0) };
  }

  for (const algorithm of ['shard-owner', 'ring', 'hierarchical'] as const) {
    it(`gives every member and the observer the same bf16 values, within bf16 rounding of the sum (${algorithm})`, async () => {
      const { all } = await reduce(algorithm, ['bf16', 'bf16', 'bf16']);
      const results = all.map((r) => {
        assert.equal(r.status, 'fulfilled', r.status === 'rejected' ? String(r.reason) : '');
        return (r as PromiseFulfilledResult<Float32Array>).value;
      });
      for (const r of results) assert.equal(Buffer.compare(bytesOf(r), bytesOf(results[0]!)), 0);
      const bits = new Uint32Array(results[0]!.buffer);
      assert.ok(
        bits.every((b) => (b & 0xffff) === 0),
        'every value is a bfloat16',
      );
      // bfloat16 keeps 8 significant bits: each rounding moves a value by at most 2^-8 of it. A value
      // is rounded at most n + 1 times on its way (contributions or partial sums on the wire, the
      // final sum; hierarchical: inside the node, across nodes, and the final sum).
      let worst = 0;
      for (let i = 0; i < length; i++) {
        let exact = 0;
        let abs = 0;
        for (const x of xs) {
          exact += x[i]!;
          abs += Math.abs(x[i]!);
        }
        worst = Math.max(worst, Math.abs(results[0]![i]! - exact) / ((n + 1) * 2 ** -8 * abs));
      }
      assert.ok(worst <= 1, `error ${worst} of the bound`);
      assert.ok(worst > 0.01, 'the values were really rounded');
    });

    it(`sends about half the bytes of float32 (${algorithm})`, async () => {
      const f32 = await reduce(algorithm, ['f32', 'f32', 'f32']);
      const bf16 = await reduce(algorithm, ['bf16', 'bf16', 'bf16']);
      for (const r of [...f32.all, ...bf16.all]) assert.equal(r.status, 'fulfilled');
      const ratio = bf16.sent / f32.sent;
      assert.ok(ratio > 0.45 && ratio < 0.55, `bf16 / f32 bytes sent: ${ratio}`);
    });

    it(`refuses a round where one member uses another encoding, naming it (${algorithm})`, async () => {
      const { all } = await reduce(algorithm, ['f32', 'bf16', 'f32']);
      const errors = all.map((r) => (r.status === 'rejected' ? (r.reason as Error) : undefined));
      assert.ok(
        errors.every((e) => e !== undefined),
        `nobody returns a sum: ${all.map((r) => (r.status === 'rejected' ? String(r.reason).slice(0, 150) : 'SUM')).join(' | ')}`,
      );
      const protocol = errors.filter((e): e is AllReduceProtocolError => e instanceof AllReduceProtocolError);
      assert.ok(protocol.length > 0);
      // Whoever sees the other encoding first refuses it and aborts the round for the rest.
      for (const e of protocol) {
        assert.match(e.message, /must use the same encoding/);
        assert.match(e.message, e.member === 'm1' ? /sends bf16/ : /sends f32/);
      }
    });
  }
});
