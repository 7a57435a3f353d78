// Whether TensorFlow really computes on a GPU here, and if not, why, in TensorFlow's own words. The
// binding's one bit (isUsingGpuDevice) hides the cause: a CUDA library TensorFlow could not dlopen
// is logged only at VLOG(1). So a child process loads @tensorflow/tfjs-node-gpu with those logs on,
// runs one matmul, and this reads its stderr: each library opened or its dlerror, the device created
// (name, compute capability, memory), and the device the MatMul ran on (eager execute's VLOG(1)).
import { spawn } from 'node:child_process';

export const GPU_BINDING = '@tensorflow/tfjs-node-gpu';

export interface GpuProbe {
  /** The file the binding resolved to, or null when it is not installed. */
  readonly binding: string | null;
  /** Why the binding did not load or compute (its own error), or null. */
  readonly loadError: string | null;
  readonly tfVersion: string | null;
  /** Every CUDA library TensorFlow tried to open: its name and null, or the loader's error. */
  readonly libraries: readonly { readonly name: string; readonly error: string | null }[];
  /** The GPU TensorFlow created a device for, e.g. "NVIDIA A100-SXM4-80GB, compute capability 8.0,
   * 78911 MB", or null. */
  readonly device: string | null;
  /** The device the test matmul ran on, e.g. "/job:localhost/replica:0/task:0/device:GPU:0". */
  readonly matmulDevice: string | null;
  /** The lines of TensorFlow's log that say any of this (for an error message or a check's log). */
  readonly log: readonly string[];
}

/** True when the probe saw the MatMul placed on a GPU. */
export const onGpu = (p: GpuProbe) => p.matmulDevice !== null && /device:GPU:\d+$/.test(p.matmulDevice);

/** The child's program: resolve and load the binding, multiply, report one JSON line on stdout. */
const CHILD = `
const out = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
let binding = null;
try { binding = require.resolve(process.argv[1], { paths: [process.argv[2]] }); }
catch (e) { out({ binding: null, loadError: process.argv[1] + ' is not installed' }); process.exit(0); }
try {
  const tf = require(binding);
  const y = tf.matMul(tf.ones([64, 64]), tf.ones([64, 64])).dataSync();
  if (y[0] !== 64) throw new Error('a 64x64 matmul of ones gave ' + y[0]);
  out({ binding, loadError: null, tfVersion: tf.backend().binding.TF_Version });
} catch (e) { out({ binding, loadError: String(e && e.message || e).split('\\n')[0] }); }
`;

/** TensorFlow's log lines worth showing: libraries, devices, placement, the driver's refusals. */
const RELEVANT =
  /dso_loader|Created device|Executing op|Skipping registering GPU|cuInit|cuda_diagnostics|kernel driver|CUDA_ERROR|GPU|cudnn|cublas/i;

/** Reads TensorFlow's stderr of one probe (exported for tests on recorded logs). */
export function readProbeLog(
  stderr: string,
  report: { binding: string | null; loadError: string | null; tfVersion?: string | null },
): GpuProbe {
  const lines = stderr.split('\n').filter((l) => RELEVANT.test(l));
  // Each library once (TensorFlow tries some twice), with its last outcome.
  const tried = new Map<string, string | null>();
  let device: string | null = null;
  let matmulDevice: string | null = null;
  for (const line of lines) {
    const opened = /Successfully opened dynamic library (\S+)/.exec(line);
    if (opened) tried.set(opened[1] as string, null);
    const failed = /Could not load dynamic library '([^']+)'; dlerror: (.*)$/.exec(line);
    if (failed) tried.set(failed[1] as string, (failed[2] as string).trim());
    const created =
      /Created device \S+ with (\d+) MB memory:\s*->\s*device: \d+, name: (.*?), pci bus id: [^,]*, compute capability: ([\d.]+)/.exec(
        line,
      );
    if (created) device = `${created[2]}, compute capability ${created[3]}, ${created[1]} MB`;
    // tfjs multiplies with BatchMatMulV2 (on a CPU build with oneDNN, _MklBatchMatMulV2).
    const placed = /Executing op \S*MatMul\S* in device (\S+)/.exec(line);
    if (placed && matmulDevice === null) matmulDevice = placed[1] as string;
  }
  return {
    binding: report.binding,
    loadError: report.loadError,
    tfVersion: report.tfVersion ?? null,
    libraries: [...tried].map(([name, error]) => ({ name, error })),
    device,
    matmulDevice,
    log: lines,
  };
}

/**
 * Runs the probe in a child process with `env` (the caller's, with the settings the real process
 * will have: CUDA_VISIBLE_DEVICES, LD_LIBRARY_PATH, TF_FORCE_GPU_ALLOW_GROWTH). `from` is the
 * directory the binding is resolved from.
 */
export function probeGpu(env: NodeJS.ProcessEnv, from: string, timeoutMs = 120_000): Promise<GpuProbe> {
  const childEnv = {
    ...env,
    TF_CPP_MIN_LOG_LEVEL: '0',
    TF_CPP_VMODULE: 'dso_loader=1,execute=1,gpu_device=1,cuda_diagnostics=1',
  };
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', CHILD, GPU_BINDING, from], {
      env: childEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: timeoutMs,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const last = stdout.trim().split('\n').at(-1) ?? '';
      let report: { binding: string | null; loadError: string | null; tfVersion?: string };
      try {
        report = JSON.parse(last);
      } catch {
        const why = signal !== null ? `killed by ${signal}` : `exit code ${code}`;
        report = { binding: null, loadError: `the GPU probe process died (${why}) before it reported` };
      }
      resolve(readProbeLog(stderr, report));
    });
  });
}

/** The probe's findings as lines for an error or a log: libraries, device, placement. */
export function describeProbe(p: GpuProbe): string[] {
  const out: string[] = [];
  out.push(
    `binding: ${p.binding ?? `${GPU_BINDING} not installed`}${p.tfVersion ? ` (TensorFlow ${p.tfVersion})` : ''}`,
  );
  if (p.loadError) out.push(`load: ${p.loadError}`);
  for (const l of p.libraries)
    out.push(`  ${l.name}: ${l.error === null ? 'opened' : `NOT opened (${l.error})`}`);
  out.push(`device: ${p.device ?? 'no GPU device created'}`);
  out.push(`test matmul ran on: ${p.matmulDevice ?? 'not logged'}`);
  const notes = p.log.filter((l) =>
    /Skipping registering GPU|cuInit|kernel driver|CUDA_ERROR|Could not find cuda drivers/i.test(l),
  );
  for (const n of new Set(notes.map((l) => l.replace(/^.*?\] /, '')))) out.push(`  TensorFlow: ${n}`);
  return out;
}
