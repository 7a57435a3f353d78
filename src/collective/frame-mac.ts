// The MAC every all-reduce frame carries: BLAKE3 in keyed mode under the run's 32-byte frame key.
// A MAC for whoever lacks the key and, being a collision-resistant hash, binding for the key's holders
// too, which the Ed25519 signature over it needs (docs/security.md). Two implementations of the same
// function, so members on either interoperate bit for bit:
//   - native: the reference Rust `blake3` crate as a prebuilt N-API binary
//     (`@napi-rs/blake-hash-linux-x64-gnu`, an optional dependency: the platform of the image and CI),
//     SIMD chosen at run time; ~5.8 GB/s on 1 MiB frames here, 4x HMAC-SHA256 (docs/collective.md);
//   - wasm: `hash-wasm`'s WebAssembly BLAKE3 on every other platform, ~0.8 GB/s. Its hashers are made
//     asynchronously, so a key is prepared (prepareFrameKey) before frames use it; allReduceSum,
//     observeAllReduce and the coordinator do that.
// LORA_MPT_FRAME_MAC=wasm picks the portable one where the native one loads (tests, comparisons).
import { createRequire } from 'node:module';
import { createBLAKE3, type IHasher } from 'hash-wasm';

/** Tags made without a key (tests, benchmarks): checkable, but anyone can make them. */
export const NO_KEY = new Uint8Array(32);
export const FRAME_KEY_BYTES = 32;

interface NativeHasher {
  reset(): void;
  update(input: Uint8Array): unknown;
  digestBuffer(): Buffer;
}
interface NativeBlake3 {
  newKeyed(key: Buffer): NativeHasher;
}

function loadNative(): NativeBlake3 | undefined {
  const choice = process.env.LORA_MPT_FRAME_MAC ?? 'auto';
  if (choice !== 'auto' && choice !== 'wasm') {
    throw new Error(`LORA_MPT_FRAME_MAC=${choice}: expected auto or wasm`);
  }
  if (choice === 'wasm') return undefined;
  try {
    const binding = createRequire(import.meta.url)('@napi-rs/blake-hash-linux-x64-gnu') as {
      Blake3Hasher?: NativeBlake3;
    };
    return binding.Blake3Hasher;
  } catch {
    return undefined; // another platform, or the optional package was not installed
  }
}

const native = loadNative();
/** Which implementation this process uses (the same bytes either way). */
export const frameMacImplementation: 'native' | 'wasm' = native ? 'native' : 'wasm';

// One hasher per key, reset for each frame (reset keeps the key): making a keyed hasher costs
// ~33 us natively, more than hashing a 4 KiB frame. A process holds a handful of run keys over its
// life (one per coordinator it served); the latest few are kept.
const MAX_KEYS = 8;
const nativeHashers = new Map<string, NativeHasher>();
const wasmHashers = new Map<string, IHasher>();
const idOf = (key: Uint8Array) => Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('hex');

function checkKey(key: Uint8Array): void {
  if (key.length !== FRAME_KEY_BYTES) {
    throw new RangeError(`frame key of ${key.length} bytes, not ${FRAME_KEY_BYTES}`);
  }
}

function remember<T>(map: Map<string, T>, id: string, value: T): T {
  if (map.size >= MAX_KEYS) map.delete(map.keys().next().value!);
  map.set(id, value);
  return value;
}

/** Makes `key` (default: no key) usable by frameMac in this process; immediate natively. */
export async function prepareFrameKey(key?: Uint8Array): Promise<void> {
  const k = key ?? NO_KEY;
  checkKey(k);
  if (native) return;
  const id = idOf(k);
  if (!wasmHashers.has(id)) remember(wasmHashers, id, await createBLAKE3(256, k));
}

/** BLAKE3-keyed(key, parts[0] ‖ parts[1] ‖ ...), 32 bytes. */
export function frameMac(key: Uint8Array | undefined, ...parts: Uint8Array[]): Buffer {
  const k = key ?? NO_KEY;
  checkKey(k);
  const id = idOf(k);
  if (native) {
    const h = nativeHashers.get(id) ?? remember(nativeHashers, id, native.newKeyed(Buffer.from(k)));
    h.reset();
    for (const p of parts) h.update(p);
    return h.digestBuffer();
  }
  const h = wasmHashers.get(id);
  if (h === undefined) {
    throw new Error(
      'frame key not prepared: the portable BLAKE3 makes its hashers asynchronously, await prepareFrameKey(key) first',
    );
  }
  h.init();
  for (const p of parts) h.update(p);
  return Buffer.from(h.digest('binary')); // a copy: the digest may be a view of the hasher's memory
}
