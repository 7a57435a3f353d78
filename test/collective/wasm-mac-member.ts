// Child process of frame-mac.test.ts, started with LORA_MPT_FRAME_MAC=wasm and
// LORA_MPT_FLOAT_KERNELS=js (the portable member: no native code): prints which BLAKE3 and which
// float loops this process uses and the keyed-hash test vectors as it computes them, then (with a NATS url) runs member
// m1 of a 2-member all-reduce of the seeded gradients and prints its result's bytes (base64).
// Arguments: [NATS_URL FRAME_KEY_HEX LENGTH SEED]. Output: one JSON line.
import { connect } from '@nats-io/transport-node';
import { floatKernelsKind } from '../../src/collective/float-kernels.ts';
import { frameMac, prepareFrameKey } from '../../src/collective/frame-mac.ts';
import { allReduceSum, frameMacImplementation } from '../../src/collective/index.ts';
import { KEYED_VECTORS, VECTOR_KEY, vectorInput } from './blake3-vectors.ts';
import { memberIds, randomGradients } from './members.ts';

const [url, keyHex, lengthArg, seedArg] = process.argv.slice(2);
await prepareFrameKey(VECTOR_KEY);
const vectors = KEYED_VECTORS.map(([length]) => {
  const input = vectorInput(length);
  const cut = Math.min(44, length);
  return Buffer.from(frameMac(VECTOR_KEY, input.subarray(0, cut), input.subarray(cut))).toString('hex');
});
let sum: string | undefined;
if (url) {
  const nc = await connect({ servers: url });
  const members = memberIds(2);
  const xs = randomGradients(2, Number(lengthArg), Number(seedArg));
  const out = await allReduceSum({
    nc,
    runId: 'mixed-mac',
    step: 1,
    generation: 0,
    members,
    self: 'm1',
    data: xs[1]!,
    frameKey: Buffer.from(keyHex!, 'hex'),
    maxPayload: 16 * 1024,
    timeoutMs: 20_000,
  });
  sum = Buffer.from(out.buffer, out.byteOffset, out.byteLength).toString('base64');
  await nc.close();
}
console.log(
  JSON.stringify({ implementation: frameMacImplementation, floatKernels: floatKernelsKind, vectors, sum }),
);
