// The all-reduce's float32 loops compiled (native/float-kernels, built by scripts/setup-native.sh),
// or undefined where that addon is not built: float-sum.ts then runs its JavaScript loops, which
// give the same sums bit for bit (the addon's sums of squares differ in the last bits: another
// summation order). LORA_MPT_FLOAT_KERNELS=js forces the JavaScript loops; =native makes a missing
// or unloadable addon an error instead of a fallback.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export interface NativeFloatKernels {
  /** out = a + b; true when some result is NaN or ±Inf. Same lengths, or it throws. */
  sum(out: Float32Array, a: Float32Array, b: Float32Array): boolean;
  /** out += a; true when some result is NaN or ±Inf. */
  add(out: Float32Array, a: Float32Array): boolean;
  /** out = a + b with sq[0] = Σ a², sq[1] = Σ b² (float64) in the same pass. */
  sumMeasured(out: Float32Array, a: Float32Array, b: Float32Array, sq: Float64Array): boolean;
  /** out += a with sq[0] = Σ a² in the same pass. */
  addMeasured(out: Float32Array, a: Float32Array, sq: Float64Array): boolean;
  /** Σ a² in float64. */
  squares(a: Float32Array): number;
  /** True when some value is NaN or ±Inf. */
  anyNonFinite(a: Float32Array): boolean;
  /** dst = src (not overlapping); true when some value is NaN or ±Inf. */
  copyChecked(dst: Float32Array, src: Float32Array): boolean;
}

/** Where scripts/setup-native.sh writes the addon. */
export const NATIVE_FLOAT_KERNELS_PATH = fileURLToPath(
  new URL('../../native/float-kernels/build/float_kernels.node', import.meta.url),
);

function load(): NativeFloatKernels | undefined {
  const want = process.env.LORA_MPT_FLOAT_KERNELS;
  if (want !== undefined && want !== '' && want !== 'js' && want !== 'native')
    throw new Error(`LORA_MPT_FLOAT_KERNELS=${want}: expected js or native`);
  if (want === 'js') return undefined;
  try {
    return createRequire(import.meta.url)(NATIVE_FLOAT_KERNELS_PATH) as NativeFloatKernels;
  } catch (e) {
    if (want === 'native')
      throw new Error(
        `LORA_MPT_FLOAT_KERNELS=native: cannot load ${NATIVE_FLOAT_KERNELS_PATH} (build it with bash scripts/setup-native.sh): ${(e as Error).message}`,
      );
    return undefined;
  }
}

/** The compiled loops, or undefined (the JavaScript ones run). */
export const nativeFloatKernels: NativeFloatKernels | undefined = load();

/** Which loops this process runs: printed by the benchmarks, checked by the tests. */
export const floatKernelsKind: 'native' | 'js' = nativeFloatKernels === undefined ? 'js' : 'native';
