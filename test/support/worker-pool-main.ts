// Many `lora-mpt worker` sessions in one process, for tests and benches that need more workers than
// this machine has room for processes (test/e2e/churn.test.ts): each session is the command's own
// runWorker with its own gRPC stream, NATS connection, metrics server and events (`worker` field).
// Usage: node --import tsx test/support/worker-pool-main.ts COUNT ID_PREFIX [worker flags...]
// Exits 0 when every session did, else 1 (after all have ended).
import { parseFlags } from '../../src/cli/flags.ts';
import { runWorker, workerFlags } from '../../src/cli/worker.ts';

const [count, prefix, ...flags] = process.argv.slice(2);
const n = Number(count);
if (!Number.isInteger(n) || n < 1 || prefix === undefined) {
  console.error('usage: worker-pool-main.ts COUNT ID_PREFIX [worker flags...]');
  process.exit(2);
}
const codes = await Promise.all(
  Array.from({ length: n }, async (_, i) => {
    try {
      return await runWorker(parseFlags(workerFlags, [...flags, '--worker_id', `${prefix}${i}`]));
    } catch (err) {
      console.error(`${prefix}${i}: ${(err as Error).stack ?? String(err)}`);
      return 1;
    }
  }),
);
const failed = codes.filter((c) => c !== 0).length;
if (failed > 0) console.error(`${failed} of ${n} worker session(s) failed: exit codes ${codes.join(' ')}`);
process.exit(failed > 0 ? 1 : 0);
