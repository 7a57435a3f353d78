// Both implementations of the frame MAC (src/collective/frame-mac.ts) compute BLAKE3's keyed hash:
// the portable WebAssembly one, forced in a child process, gives the published test vectors, and a
// member using it (and the JavaScript float loops) all-reduces with a member using the native ones
// over a real nats-server, frames authenticated, to the exact float32 sum.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { floatKernelsKind } from '../../src/collective/float-kernels.ts';
import { frameMac, prepareFrameKey } from '../../src/collective/frame-mac.ts';
import { allReduceSum, frameMacImplementation } from '../../src/collective/index.ts';
import { type NatsServer, startNats } from '../support/nats.ts';
import { KEYED_VECTORS } from './blake3-vectors.ts';
import { connectMembers, memberIds, randomGradients, sumInOrder } from './members.ts';

const CHILD = fileURLToPath(new URL('./wasm-mac-member.ts', import.meta.url));
const run = promisify(execFile);

async function wasmChild(args: string[]) {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', CHILD, ...args], {
    env: { ...process.env, LORA_MPT_FRAME_MAC: 'wasm', LORA_MPT_FLOAT_KERNELS: 'js' },
    timeout: 60_000,
  });
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as {
    implementation: string;
    floatKernels: string;
    vectors: string[];
    sum?: string;
  };
}

describe('the frame MAC, native and portable', () => {
  let server: NatsServer;
  before(async () => {
    server = await startNats();
  });
  after(async () => {
    await server?.stop();
  });

  it('uses the native BLAKE3 on the platform of the image and CI (linux x64, glibc)', (t) => {
    const glibc = Boolean(
      (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } })?.header
        ?.glibcVersionRuntime,
    );
    if (!(process.platform === 'linux' && process.arch === 'x64' && glibc)) {
      t.skip(`${process.platform} ${process.arch}: the portable BLAKE3 is expected here`);
      return;
    }
    assert.equal(frameMacImplementation, 'native');
  });

  it('gives the published keyed-hash vectors with the portable BLAKE3', async () => {
    const child = await wasmChild([]);
    assert.equal(child.implementation, 'wasm');
    assert.deepEqual(
      child.vectors,
      KEYED_VECTORS.map(([, hex]) => hex),
    );
  });

  it('refuses, naming what to do, a key the portable BLAKE3 was not given first', async () => {
    // In this process the native one needs no preparation; the rule is the portable one's, checked
    // where it runs: a child that hashes under a key it did not prepare.
    await prepareFrameKey(new Uint8Array(32)); // immediate here
    assert.throws(() => frameMac(new Uint8Array(31)), /31 bytes, not 32/);
    const { stderr } = await run(
      process.execPath,
      [
        '--import',
        'tsx',
        '--input-type=module',
        '-e',
        `const m = await import(${JSON.stringify(new URL('../../src/collective/frame-mac.ts', import.meta.url).href)}); m.frameMac(new Uint8Array(32).fill(1), new Uint8Array(4));`,
      ],
      { env: { ...process.env, LORA_MPT_FRAME_MAC: 'wasm' } },
    ).then(
      () => ({ stderr: '' }),
      (e: { stderr: string }) => e,
    );
    assert.match(stderr, /frame key not prepared: .*await prepareFrameKey\(key\) first/);
  });

  it('all-reduces between a native member and a portable one (BLAKE3 and float loops) to the exact sum', async () => {
    const key = randomBytes(32);
    const length = 40_000; // 10 frames of 16 KiB per member and phase
    const seed = 91;
    const xs = randomGradients(2, length, seed);
    const [nc] = await connectMembers(server.url, 1);
    try {
      const [mine, child] = await Promise.all([
        allReduceSum({
          nc: nc!,
          runId: 'mixed-mac',
          step: 1,
          generation: 0,
          members: memberIds(2),
          self: 'm0',
          data: xs[0]!,
          frameKey: key,
          maxPayload: 16 * 1024,
          timeoutMs: 20_000,
        }),
        wasmChild([server.url, key.toString('hex'), String(length), String(seed)]),
      ]);
      assert.equal(child.implementation, 'wasm');
      assert.equal(child.floatKernels, 'js');
      // CI builds the addon (scripts/setup-native.sh): there the two members sum with different code.
      if (process.env.CI) assert.equal(floatKernelsKind, 'native');
      const expected = sumInOrder(xs, [0, 1]);
      const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
      assert.ok(bytes(mine).equals(bytes(expected)), 'the native member holds the exact sum');
      assert.ok(Buffer.from(child.sum!, 'base64').equals(bytes(expected)), 'so does the portable one');
    } finally {
      await nc!.close();
    }
  });
});
