// The compute backend's memory as TensorFlow.js reports it, for the worker's metrics: live tensors
// and their bytes, and on wasm the WebAssembly heap (which only grows). The native backend's own
// allocator is not visible here; its memory is the process's (resident set size).
import * as tf from '@tensorflow/tfjs-core';

export interface BackendMemoryNow {
  readonly tensors: number;
  readonly tensorBytes: number;
  readonly wasmHeapBytes?: number;
}

export function backendMemory(): BackendMemoryNow {
  const m = tf.memory();
  const heap = (tf.backend() as { wasm?: { HEAPU8?: Uint8Array } }).wasm?.HEAPU8?.byteLength;
  return {
    tensors: m.numTensors,
    tensorBytes: m.numBytes,
    ...(heap === undefined ? {} : { wasmHeapBytes: heap }),
  };
}
