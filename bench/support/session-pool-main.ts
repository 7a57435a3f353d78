// A simulated node: `node --import tsx bench/support/session-pool-main.ts --coordinator H:P --nats URL
// --ids w000,w001,... [--gpu_profile NAME|none] [--gpu_mfu X] [--max_in_flight N] [--log_level L]`
// runs one synthetic worker session per id (src/worker/session-pool.ts), JSON events on stdout.
// Exits 0 when every session saw its run finish, 1 naming the sessions that failed.
import { parseArgs } from 'node:util';
import { createEvents, type EventLevel } from '../../src/events/events.ts';
import { gpuProfile } from '../../src/model/gpu-profiles.ts';
import { runSessionPool } from '../../src/worker/session-pool.ts';

const { values: f } = parseArgs({
  options: {
    coordinator: { type: 'string' },
    nats: { type: 'string' },
    ids: { type: 'string' },
    gpu_profile: { type: 'string', default: 'none' },
    gpu_mfu: { type: 'string', default: '0.5' },
    max_in_flight: { type: 'string', default: '2' },
    log_level: { type: 'string', default: 'warn' },
  },
});
if (!f.coordinator || !f.nats || !f.ids) {
  console.error('session-pool-main: --coordinator, --nats and --ids are required');
  process.exit(2);
}
let modelled = 0;
let trained = 0;
const events = createEvents({ label: 'pool', format: 'json', level: f.log_level as EventLevel });
const outcomes = await runSessionPool({
  coordinator: f.coordinator,
  nats: f.nats.split(','),
  workerIds: f.ids.split(','),
  profile: f.gpu_profile === 'none' ? null : gpuProfile(f.gpu_profile, { mfu: Number(f.gpu_mfu) }),
  maxInFlight: Number(f.max_in_flight),
  security: { kind: 'insecure' },
  events: (id) => events.child({ worker: id }),
  giveUpAfterMs: 120_000,
  onTrained: (seconds) => {
    modelled += seconds;
    trained++;
  },
});
// For the bench's ideal step time: what the modelled GPUs of this node spent on training.
console.log(JSON.stringify({ event: 'pool_done', modelled_train_seconds: modelled, micro_batches: trained }));
const failed = outcomes.filter((o) => o.error !== undefined);
for (const o of failed) console.error(`session ${o.id}: ${o.error?.message}`);
process.exit(failed.length === 0 ? 0 : 1);
