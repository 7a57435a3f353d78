// What the GPU probe reads from TensorFlow's own log. The recorded log is real: PyPI's CUDA
// tensorflow 2.16.2 under @tensorflow/tfjs-node-gpu (scripts/setup-tensorflow-gpu.sh
// --without-cuda-libs) on this project's CPU-only VM, with the probe's TF_CPP_VMODULE (see
// test/fixtures/gpu-probe/README.md). No GPU has been lent, so the GPU-side lines below are written
// from the formats in TensorFlow's source (gpu_device.cc, execute.cc) and say so.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { describeProbe, onGpu, readProbeLog } from '../../src/model/gpu-probe.ts';

const RECORDED = readFileSync(
  new URL('../fixtures/gpu-probe/cuda-build-on-a-cpu-host.stderr', import.meta.url),
  'utf8',
);
const LOADED = { binding: '/x/tfjs-node-gpu/dist/index.js', loadError: null, tfVersion: '2.16.2' };

describe('GPU probe', () => {
  it("names each CUDA library TensorFlow could not open, with the loader's error, once", () => {
    const p = readProbeLog(RECORDED, LOADED);
    assert.deepEqual(p.libraries, [
      {
        name: 'libcudart.so.12',
        error: 'libcudart.so.12: cannot open shared object file: No such file or directory',
      },
      {
        name: 'libcuda.so.1',
        error: 'libcuda.so.1: cannot open shared object file: No such file or directory',
      },
    ]);
  });

  it('sees the matmul placed on the CPU, no GPU device, and so no GPU', () => {
    const p = readProbeLog(RECORDED, LOADED);
    assert.equal(p.matmulDevice, '/job:localhost/replica:0/task:0/device:CPU:0');
    assert.equal(p.device, null);
    assert.equal(onGpu(p), false);
    const text = describeProbe(p).join('\n');
    assert.match(text, /libcudart\.so\.12: NOT opened \(libcudart\.so\.12: cannot open shared object file/);
    assert.match(text, /device: no GPU device created/);
    assert.match(text, /TensorFlow: kernel driver does not appear to be running on this host/);
    assert.match(text, /TensorFlow: Could not find cuda drivers on your machine, GPU will not be used\./);
  });

  it('reads a created GPU device and a matmul placed on it (lines in the format of TF 2.16 source)', () => {
    const gpuLog = [
      '2026-01-01 00:00:00.000000: I external/local_tsl/tsl/platform/default/dso_loader.cc:70] Successfully opened dynamic library libcudart.so.12',
      '2026-01-01 00:00:01.000000: I tensorflow/core/common_runtime/gpu/gpu_device.cc:1928] Created device /job:localhost/replica:0/task:0/device:GPU:0 with 78911 MB memory:  -> device: 0, name: NVIDIA A100-SXM4-80GB, pci bus id: 0000:00:04.0, compute capability: 8.0',
      '2026-01-01 00:00:02.000000: I tensorflow/core/common_runtime/eager/execute.cc:1756] Executing op BatchMatMulV2 in device /job:localhost/replica:0/task:0/device:GPU:0',
    ].join('\n');
    const p = readProbeLog(gpuLog, LOADED);
    assert.deepEqual(p.libraries, [{ name: 'libcudart.so.12', error: null }]);
    assert.equal(p.device, 'NVIDIA A100-SXM4-80GB, compute capability 8.0, 78911 MB');
    assert.equal(onGpu(p), true);
  });

  it('keeps the reason a binding did not load', () => {
    const p = readProbeLog('', { binding: null, loadError: '@tensorflow/tfjs-node-gpu is not installed' });
    assert.equal(onGpu(p), false);
    assert.match(
      describeProbe(p).join('\n'),
      /binding: @tensorflow\/tfjs-node-gpu not installed\nload: @tensorflow\/tfjs-node-gpu is not installed/,
    );
  });
});
