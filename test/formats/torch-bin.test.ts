import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { SafetensorsReader } from '../../src/formats/safetensors.ts';
import { TorchBinReader } from '../../src/formats/torch-bin.ts';
import { loadTorchPickle, PickleSecurityError } from '../../src/formats/torch-pickle.ts';
import { ZipArchive } from '../../src/formats/torch-zip.ts';
import { collect, FIXTURES, sameBits } from '../checkpoint/fixtures.ts';
import { craftZip } from './craft-zip.ts';

const tmp = mkdtempSync(join(tmpdir(), 'lora-mpt-bin-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

// Pickle bytes written by hand, opcode by opcode (protocol 2, as torch.save writes them).
const op = (s: string) => Buffer.from(s, 'latin1');
const unicode = (s: string) => {
  const b = Buffer.from(s);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(b.length);
  return Buffer.concat([op('X'), len, b]);
};
const int1 = (n: number) => Buffer.from([0x4b, n]);
const PROTO2 = Buffer.from([0x80, 0x02]);

/** A torch.save zip holding `pkl` as data.pkl plus the given storages. */
function torchFile(
  name: string,
  pkl: Buffer,
  storages: Record<string, Uint8Array> = {},
  zip64 = false,
): string {
  const entries = [
    { name: 'archive/data.pkl', data: pkl },
    { name: 'archive/byteorder', data: Buffer.from('little') },
    ...Object.entries(storages).map(([k, data]) => ({ name: `archive/data/${k}`, data })),
    { name: 'archive/version', data: Buffer.from('3\n') },
  ];
  const path = join(tmp, name);
  writeFileSync(path, craftZip(entries, zip64));
  return path;
}

/** {name: _rebuild_tensor_v2(FloatStorage key '0' of numel, offset, shape, stride, False, OrderedDict())} */
function stateDictPickle(name: string, numel: number, shape: number[], stride: number[], offset = 0): Buffer {
  const tuple = (xs: number[]) => Buffer.concat([op('('), ...xs.map(int1), op('t')]);
  return Buffer.concat([
    PROTO2,
    op('}'),
    unicode(name),
    op('ctorch._utils\n_rebuild_tensor_v2\n'),
    op('('),
    op('('),
    unicode('storage'),
    op('ctorch\nFloatStorage\n'),
    unicode('0'),
    unicode('cpu'),
    int1(numel),
    op('t'),
    op('Q'),
    int1(offset),
    tuple(shape),
    tuple(stride),
    Buffer.from([0x89]),
    op('ccollections\nOrderedDict\n'),
    op(')R'),
    op('tR'),
    op('s.'),
  ]);
}

describe('torch .bin reader', () => {
  it('reads every fixture .bin bitwise equal to the same case in safetensors', async () => {
    const pairs = [
      ['h12-wqkv/pytorch_model.bin', 'h12-wqkv/model.safetensors'],
      ['h6-all/adapter_init_bin/adapter_model.bin', 'h6-all/adapter_init/adapter_model.safetensors'],
    ];
    for (const [bin, st] of pairs) {
      const b = await TorchBinReader.open(join(FIXTURES, bin!));
      const s = await SafetensorsReader.open(join(FIXTURES, st!));
      const bt = await collect(b.tensors());
      const stt = await collect(s.tensors());
      await Promise.all([b.close(), s.close()]);
      assert.deepEqual([...bt.keys()].sort(), [...stt.keys()].sort());
      for (const [name, t] of stt) {
        assert.deepEqual(bt.get(name)!.shape, t.shape, name);
        assert.ok(sameBits(bt.get(name)!.data, t.data), `${bin}: ${name} differs`);
      }
    }
  });

  it('reads BFloat16Storage tensors (the bf16 fixture)', async () => {
    const b = await TorchBinReader.open(join(FIXTURES, 'h8-clip-bf16/pytorch_model.bin'));
    assert.ok(b.entries.every((e) => e.ref.storage.dtype === 'BF16'));
    const wte = await b.read(b.entries.find((e) => e.name === 'transformer.wte.weight')!);
    await b.close();
    // Every value came from a bf16: its low 16 bits are zero.
    assert.ok(new Uint32Array(wte.data.buffer).every((v) => (v & 0xffff) === 0));
  });

  it('gathers a strided (transposed) tensor view into row-major order', async () => {
    const storage = new Float32Array([0, 1, 2, 3, 4, 5]); // a 2x3 matrix; the view is its 3x2 transpose
    const path = torchFile('strided.bin', stateDictPickle('t', 6, [3, 2], [1, 3]), {
      '0': new Uint8Array(storage.buffer),
    });
    const t = await collect((await TorchBinReader.open(path)).tensors());
    assert.deepEqual([...t.get('t')!.data], [0, 3, 1, 4, 2, 5]);
  });

  it('honours the storage offset of a view', async () => {
    const storage = new Float32Array([9, 9, 1, 2, 3, 4]);
    const path = torchFile('offset.bin', stateDictPickle('t', 6, [2, 2], [2, 1], 2), {
      '0': new Uint8Array(storage.buffer),
    });
    const t = await collect((await TorchBinReader.open(path)).tensors());
    assert.deepEqual([...t.get('t')!.data], [1, 2, 3, 4]);
  });

  it('reads a zip64 archive (the layout of multi-GB shards)', async () => {
    const storage = new Float32Array([1, 2, 3, 4]);
    const path = torchFile(
      'zip64.bin',
      stateDictPickle('w', 4, [2, 2], [2, 1]),
      { '0': new Uint8Array(storage.buffer) },
      true,
    );
    const zip = await ZipArchive.open(path);
    assert.equal(zip.entry('archive/data/0').size, 16);
    await zip.close();
    const t = await collect((await TorchBinReader.open(path)).tensors());
    assert.deepEqual([...t.get('w')!.data], [1, 2, 3, 4]);
  });

  it('refuses a view that reaches past its storage', async () => {
    const path = torchFile('past.bin', stateDictPickle('t', 4, [2, 3], [3, 1]), { '0': new Uint8Array(16) });
    const r = await TorchBinReader.open(path);
    await assert.rejects(r.read(r.entries[0]!), /tensor "t" reaches past its storage/);
    await r.close();
  });
});

describe('restricted unpickler', () => {
  const marker = join(tmp, 'PWNED');
  const attacks: Record<string, Buffer> = {
    // What pickle.dumps writes for an object whose __reduce__ returns (os.system, ('touch …',)).
    'posix.system via GLOBAL + REDUCE': Buffer.concat([
      PROTO2,
      op('cposix\nsystem\n'),
      unicode(`touch ${marker}`),
      Buffer.from([0x85]),
      op('R.'),
    ]),
    'builtins.eval via STACK_GLOBAL': Buffer.concat([
      PROTO2,
      unicode('builtins'),
      unicode('eval'),
      Buffer.from([0x93]),
      unicode(`__import__('os').system('touch ${marker}')`),
      Buffer.from([0x85]),
      op('R.'),
    ]),
    // The global hides inside an otherwise valid state dict, after a real tensor entry.
    'subprocess.Popen inside a state dict': Buffer.concat([
      stateDictPickle('ok', 1, [1], [1]).subarray(0, -1),
      unicode('evil'),
      op('csubprocess\nPopen\n'),
      unicode('touch'),
      unicode(marker),
      Buffer.from([0x86, 0x85]),
      op('Rs.'),
    ]),
  };

  for (const [what, pkl] of Object.entries(attacks)) {
    it(`refuses ${what}, naming the global and the file, and runs nothing`, async () => {
      const path = torchFile(`evil-${what.split(' ')[0]}.bin`, pkl, { '0': new Uint8Array(4) });
      await assert.rejects(TorchBinReader.open(path), (e: Error) => {
        assert.ok(e instanceof PickleSecurityError, e.message);
        const global = what.split(' ')[0]!;
        assert.ok(e.message.includes(`"${global}"`), e.message);
        assert.ok(e.message.startsWith(path), e.message);
        return true;
      });
      assert.equal(existsSync(marker), false, 'the payload must never run');
    });
  }

  it('refuses to call an allowed global that is not a callable (a storage class)', () => {
    const pkl = Buffer.concat([PROTO2, op('ctorch\nFloatStorage\n'), op(')R.')]);
    assert.throws(
      () => loadTorchPickle(pkl, 'x.pkl'),
      /x\.pkl: malformed torch pickle: call of non-callable/,
    );
  });

  it('refuses opcodes torch.save never writes (INST, OBJ)', () => {
    assert.throws(
      () => loadTorchPickle(Buffer.concat([PROTO2, op('(iposix\nsystem\n.')]), 'x.pkl'),
      /opcode 0x69/,
    );
    assert.throws(() => loadTorchPickle(Buffer.concat([PROTO2, op('(o.')]), 'x.pkl'), /opcode 0x6f/);
  });

  it('reports truncation instead of reading past the end', () => {
    assert.throws(
      () => loadTorchPickle(Buffer.concat([PROTO2, op('X'), Buffer.from([9, 0, 0, 0]), op('ab')]), 'x'),
      /truncated/,
    );
  });
});
