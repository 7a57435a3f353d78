// `lora-mpt probe`: what the chart's `helm test` pod runs against a live run. It checks that the
// coordinator answers GET /healthz with 200 and that NATS accepts the run's credentials: a TLS
// connection as the run's user, and a message published and received on one of the run's subjects
// (the server allows that user only `lora.>`). One event per check (probe_passed / probe_failed,
// field `check`); exit 0 when both pass, 1 if not.
import { randomUUID } from 'node:crypto';
import { connect } from '@nats-io/transport-node';
import { type Command, flagCommand } from './command.ts';
import { type FlagSpecs, UsageError } from './flags.ts';
import { eventsFromFlags, logFlags } from './log-flags.ts';
import { natsSecurityFlags, natsSecurityOf } from './security-flags.ts';

const flags = {
  coordinator_url: {
    kind: 'string',
    help: "The coordinator's HTTP address (its --metrics_port), e.g. http://demo-lora-mpt-coordinator:9400; GET <url>/healthz must answer 200.",
  },
  nats: { kind: 'string', help: 'NATS server URL(s), comma-separated, as the run uses them.' },
  ...natsSecurityFlags,
  subject_prefix: {
    kind: 'string',
    default: 'lora.probe',
    help: "Subject prefix of the round trip (a random suffix is added); it must be one the run's NATS user may use.",
  },
  timeout_ms: { kind: 'int', default: 10000, min: 100, help: 'Time allowed to each check.' },
  ...logFlags,
} as const satisfies FlagSpecs;

async function checkHealthz(url: string, timeoutMs: number): Promise<string> {
  const target = `${url.replace(/\/+$/, '')}/healthz`;
  const res = await fetch(target, { signal: AbortSignal.timeout(timeoutMs) });
  const body = (await res.text()).trim();
  if (res.status !== 200) throw new Error(`GET ${target}: HTTP ${res.status} ${body}`);
  return `GET ${target}: 200 ${body}`;
}

async function checkNats(
  servers: string,
  security: ReturnType<typeof natsSecurityOf>,
  subjectPrefix: string,
  timeoutMs: number,
): Promise<string> {
  const nc = await connect({
    servers: servers.split(','),
    name: 'lora-mpt-probe',
    ...security,
    timeout: timeoutMs,
    reconnect: false,
  });
  try {
    const subject = `${subjectPrefix}.${randomUUID()}`;
    const sub = nc.subscribe(subject, { max: 1, timeout: timeoutMs });
    // A permissions violation arrives asynchronously; flushing first surfaces a refused subscribe.
    await nc.flush();
    nc.publish(subject, 'probe');
    for await (const _ of sub) break;
    return `NATS ${nc.getServer()}: user ${security.user ?? '(none)'} published and received on ${subject}`;
  } finally {
    await nc.close();
  }
}

export const probeCommand: Command = flagCommand({
  name: 'probe',
  summary: "check a running run: the coordinator's /healthz and NATS with the run's credentials",
  usage: 'lora-mpt probe --coordinator_url URL --nats URL --nats_user USER --nats_ca FILE [flags]',
  description:
    "Checks a running run from inside its cluster (the chart's `helm test`): the coordinator answers GET /healthz with 200, and NATS accepts the run's user over TLS for a publish/subscribe round trip. Exits 0 when both pass, 1 naming what failed.",
  flags,
  async run(f) {
    const url = f.coordinator_url;
    const servers = f.nats;
    if (url === undefined) throw new UsageError('--coordinator_url is required');
    if (servers === undefined) throw new UsageError('--nats is required');
    const security = natsSecurityOf({ ...f, insecure: false }, process.env);
    const events = eventsFromFlags(f, { label: 'probe' });
    let failed = 0;
    const report = async (check: 'coordinator' | 'nats', run: () => Promise<string>) => {
      try {
        events.info('probe_passed', `${check}: ${await run()}`, { check });
      } catch (err) {
        failed += 1;
        events.error('probe_failed', `${check}: ${(err as Error).message}`, { check });
      }
    };
    await report('coordinator', () => checkHealthz(url, f.timeout_ms));
    await report('nats', () => checkNats(servers, security, f.subject_prefix, f.timeout_ms));
    return failed === 0 ? 0 : 1;
  },
});
