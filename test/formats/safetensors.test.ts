import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { convertToFloat32 } from '../../src/formats/dtypes.ts';
import { SafetensorsError, SafetensorsReader, writeSafetensors } from '../../src/formats/safetensors.ts';
import { collect, FIXTURES, sameBits } from '../checkpoint/fixtures.ts';

const tmp = mkdtempSync(join(tmpdir(), 'lora-mpt-st-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A safetensors file from a header object and a data buffer, exactly as given (no validation). */
function rawFile(name: string, header: unknown, data: Uint8Array, pad = true): string {
  let json = JSON.stringify(header);
  if (pad) json = json.padEnd(Math.ceil(json.length / 8) * 8, ' ');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  const path = join(tmp, name);
  writeFileSync(path, Buffer.concat([len, Buffer.from(json), data]));
  return path;
}

async function rejects(path: string, pattern: RegExp): Promise<void> {
  await assert.rejects(SafetensorsReader.open(path), (e: Error) => {
    assert.ok(e instanceof SafetensorsError, e.message);
    assert.match(e.message, pattern);
    assert.ok(e.message.startsWith(path), 'the error names the file');
    return true;
  });
}

describe('safetensors reader', () => {
  it('reads the Python-written fixture with its metadata', async () => {
    const r = await SafetensorsReader.open(join(FIXTURES, 'h12-wqkv', 'model.safetensors'));
    assert.deepEqual(r.header.metadata, { format: 'pt' });
    assert.equal(r.header.entries.length, 14);
    const wqkv = await r.read(r.entry('transformer.blocks.0.attn.Wqkv.weight'));
    assert.deepEqual(wqkv.shape, [144, 48]);
    assert.equal(wqkv.data.length, 144 * 48);
    await r.close();
  });

  it('reads I64 scalars (supervised_tokens of expected.safetensors) as float32', async () => {
    const r = await SafetensorsReader.open(join(FIXTURES, 'h12-wqkv', 'expected.safetensors'));
    const e = r.entry('supervised_tokens');
    assert.equal(e.dtype, 'I64');
    assert.deepEqual(e.shape, []);
    assert.deepEqual([...(await r.read(e)).data], [27]);
    await r.close();
  });

  it('converts bf16 exactly (bits << 16)', () => {
    const bits = [0x3f80, 0xc040, 0x7f80, 0x0001, 0x3f81, 0x8000, 0x7f7f];
    const src = new Uint8Array(new Uint16Array(bits).buffer);
    const out = new Float32Array(bits.length);
    convertToFloat32(src, 'BF16', bits.length, out);
    assert.deepEqual([...out.slice(0, 3)], [1, -3, Number.POSITIVE_INFINITY]);
    assert.equal(out[3], 2 ** -133); // smallest bf16 subnormal
    assert.equal(out[4], 1 + 2 ** -7);
    assert.ok(Object.is(out[5], -0));
    assert.equal(out[6], (2 - 2 ** -7) * 2 ** 127); // largest finite bf16
    // The same bytes at an odd offset take the unaligned path and give the same bits.
    const odd = new Uint8Array(src.length + 1).subarray(1);
    odd.set(src);
    const out2 = new Float32Array(bits.length);
    convertToFloat32(odd, 'BF16', bits.length, out2);
    assert.ok(sameBits(out2, out));
  });

  it('converts f16 exactly, subnormals and infinities included', () => {
    const bits = [0x3c00, 0x0001, 0x7bff, 0xfc00, 0x3555, 0x0400, 0xc000];
    const out = new Float32Array(bits.length);
    convertToFloat32(new Uint8Array(new Uint16Array(bits).buffer), 'F16', bits.length, out);
    assert.deepEqual([...out], [1, 2 ** -24, 65504, Number.NEGATIVE_INFINITY, 0.333251953125, 2 ** -14, -2]);
    const nan = new Float32Array(1);
    convertToFloat32(new Uint8Array(new Uint16Array([0x7e00]).buffer), 'F16', 1, nan);
    assert.ok(Number.isNaN(nan[0]));
  });

  it('reads F16 and BF16 tensors from a file', async () => {
    const data = new Uint8Array(new Uint16Array([0x3c00, 0xc000, 0x3f80, 0x4040]).buffer);
    const path = rawFile(
      'half.safetensors',
      {
        a: { dtype: 'F16', shape: [2], data_offsets: [0, 4] },
        b: { dtype: 'BF16', shape: [1, 2], data_offsets: [4, 8] },
      },
      data,
    );
    const t = await collect((await SafetensorsReader.open(path)).tensors());
    assert.deepEqual([...t.get('a')!.data], [1, -2]);
    assert.deepEqual([...t.get('b')!.data], [1, 3]);
  });

  it('accepts 0-rank and empty tensors', async () => {
    const path = rawFile(
      'scalar.safetensors',
      {
        s: { dtype: 'F32', shape: [], data_offsets: [0, 4] },
        e: { dtype: 'F32', shape: [0, 3], data_offsets: [4, 4] },
      },
      new Uint8Array(new Float32Array([2.5]).buffer),
    );
    const t = await collect((await SafetensorsReader.open(path)).tensors());
    assert.deepEqual([...t.get('s')!.data], [2.5]);
    assert.equal(t.get('e')!.data.length, 0);
  });

  it('refuses a hole, an overlap, trailing bytes and a size that does not match the shape', async () => {
    const eight = new Uint8Array(8);
    await rejects(
      rawFile('hole.st', { a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, eight),
      /hole at byte 0/,
    );
    await rejects(
      rawFile(
        'overlap.st',
        {
          a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
          b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] },
        },
        eight,
      ),
      /overlaps/,
    );
    await rejects(
      rawFile('trail.st', { a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, eight),
      /cover 4 data bytes but the file holds 8/,
    );
    await rejects(
      rawFile('size.st', { a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, eight),
      /needs 12/,
    );
  });

  it('refuses bad headers: unknown dtype, non-string metadata, not an object, too long, truncated', async () => {
    const four = new Uint8Array(4);
    await rejects(
      rawFile('dt.st', { a: { dtype: 'F8_E4M3', shape: [4], data_offsets: [0, 4] } }, four),
      /dtype "F8_E4M3" is not supported/,
    );
    await rejects(
      rawFile('md.st', { __metadata__: { n: 1 } }, new Uint8Array(0)),
      /"__metadata__" must map strings to strings/,
    );
    await rejects(rawFile('arr.st', [1], new Uint8Array(0)), /must start with "\{"/);
    const huge = join(tmp, 'huge.st');
    const len = Buffer.alloc(16);
    len.writeBigUInt64LE(200_000_000n);
    writeFileSync(huge, len);
    await rejects(huge, /exceeds the 100000000-byte limit/);
    const short = join(tmp, 'short.st');
    len.writeBigUInt64LE(64n);
    writeFileSync(short, len);
    await rejects(short, /runs past the end/);
  });

  it('refuses a header nested past three levels before parsing it, counting no bracket inside a string', async () => {
    await rejects(
      rawFile('deep4.st', { a: { dtype: 'F32', shape: [[1]], data_offsets: [0, 4] } }, new Uint8Array(4)),
      /nests deeper than 3 levels/,
    );
    // The audit's hostile header: ~90 MB of "[" would make JSON.parse build millions of arrays.
    const depth = 90_000_000;
    const json = Buffer.alloc(5 + depth + 1, 0x5b);
    json.write('{"a":', 0);
    json[json.length - 1] = 0x7d;
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    const hostile = join(tmp, 'hostile.st');
    writeFileSync(hostile, Buffer.concat([len, json]));
    await rejects(hostile, /nests deeper than 3 levels at character 7/);
    const text = rawFile('brackets.st', { __metadata__: { note: '[[[[{{{{' } }, new Uint8Array(0));
    assert.deepEqual((await SafetensorsReader.open(text)).header.metadata, { note: '[[[[{{{{' });
  });
});

describe('safetensors writer', () => {
  it('reproduces the file PEFT wrote, byte for byte', async () => {
    for (const c of ['h12-wqkv', 'h6-all', 'h8-clip-bf16']) {
      const path = join(FIXTURES, c, 'adapter_init', 'adapter_model.safetensors');
      const r = await SafetensorsReader.open(path);
      const tensors = [...(await collect(r.tensors())).values()].reverse(); // order must not matter
      await r.close();
      const out = join(tmp, `${c}.safetensors`);
      await writeSafetensors(out, tensors);
      assert.ok(readFileSync(out).equals(readFileSync(path)), `${c}: bytes differ from PEFT's`);
    }
  });

  it('pads the header with spaces to a multiple of 8 and round-trips values bitwise', async () => {
    const data = new Float32Array([1.5, -0, Number.NaN, 3e-41, Number.POSITIVE_INFINITY, 7]);
    const path = join(tmp, 'rt.safetensors');
    await writeSafetensors(path, [
      { name: 'x', shape: [2, 3], data },
      { name: '10', shape: [], data: new Float32Array([4]) },
    ]);
    const bytes = readFileSync(path);
    const n = Number(bytes.readBigUInt64LE(0));
    assert.equal(n % 8, 0);
    const header = bytes.subarray(8, 8 + n).toString();
    assert.match(header, /^\{"__metadata__":\{"format":"pt"\},"10":/);
    assert.ok(header.endsWith('}') || header.endsWith(' '));
    const t = await collect((await SafetensorsReader.open(path)).tensors());
    assert.ok(sameBits(t.get('x')!.data, data));
    assert.deepEqual(t.get('x')!.shape, [2, 3]);
  });

  it('refuses a value count that does not match the shape', async () => {
    await assert.rejects(
      writeSafetensors(join(tmp, 'bad.st'), [{ name: 'w', shape: [2, 2], data: new Float32Array(3) }]),
      /tensor "w": 3 values for shape \[2,2\]/,
    );
  });
});
