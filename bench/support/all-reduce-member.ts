// Child process of bench/all-reduce.ts: one all-reduce member with its own NATS connection, so the
// benchmark measures members the way they run (one process each), not N members on one event loop.
// It also replays, as plain publish/subscribe, the data traffic it recorded during an all-reduce:
// the same subjects, message sizes and subscriptions with no all-reduce logic, the raw NATS ceiling.
// Arguments: NATS_URL INDEX MEMBERS FRAME_KEY_HEX. One JSON line per stdin request (bench/support/peer.ts):
//   reduce ALGORITHM MODE GENERATION [record] -> {ms, cpuMs, gcMs}         (record: remember its data traffic)
//   digest                                    -> {digest}                  (of the last reduce's result)
//   raw-sub ALGORITHM MODE SEQ                -> {}                        (subscribe the recorded subjects)
//   raw-go ALGORITHM MODE SEQ                 -> {ms, cpuMs, gcMs}         (publish, wait for what it expects)
// MODE: signed (the MAC and each member's Ed25519 signature, as workers run), mac (the MAC only), bf16
// (signed, values as bfloat16). Member i's signing key is derived from the frame key and i, so every
// member knows every public key without a coordinator.
import { createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { PerformanceObserver } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { type AllReduceAlgorithm, allReduceSum, isAllReduceAlgorithm } from '../../src/collective/index.ts';

const [url, indexArg, membersArg, keyHex] = process.argv.slice(2);
const index = Number(indexArg);
const n = Number(membersArg);
if (!url || !Number.isInteger(index) || !Number.isInteger(n) || !keyHex) {
  throw new Error(
    `usage: all-reduce-member NATS_URL INDEX MEMBERS FRAME_KEY_HEX, got ${process.argv.slice(2)}`,
  );
}
const BYTES = 16 * 2 ** 20;
const members = Array.from({ length: n }, (_, i) => `m${i}`);
const frameKey = Buffer.from(keyHex, 'hex');
const data = Float32Array.from({ length: BYTES / 4 }, (_, i) => Math.sin(i * 0.001 + index));
// Where every round writes its sum, kept from round to round as the worker keeps its own.
const sum = new Float32Array(data.length);
const nc = await connect({ servers: url });
// PKCS#8 DER of an Ed25519 private key: this prefix, then the 32-byte seed.
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const signingKeyOf = (i: number): KeyObject =>
  createPrivateKey({
    key: Buffer.concat([PKCS8_PREFIX, createHash('sha256').update(frameKey).update(String(i)).digest()]),
    format: 'der',
    type: 'pkcs8',
  });
const signingKey = signingKeyOf(index);
const participantKeys = members.map((_, i) => createPublicKey(signingKeyOf(i)));
const MODES = ['signed', 'mac', 'bf16'] as const;
type Mode = (typeof MODES)[number];
function modeOf(v: string | undefined): Mode {
  if (!(MODES as readonly (string | undefined)[]).includes(v))
    throw new Error(`member ${index}: unknown mode ${v}`);
  return v as Mode;
}
// Time this process spent in garbage collection (all kinds), read around each request.
let gcMs = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcMs += e.duration;
}).observe({ entryTypes: ['gc'] });

/** The data messages one member published and the data subscriptions it held, subjects without the round prefix. */
interface Traffic {
  readonly sends: { readonly subject: string; readonly bytes: number }[];
  readonly subscriptions: string[];
  received: number;
}
const recorded = new Map<string, Traffic>();

// lora.<runId>.s<step>.g<generation>.<phase>...: control traffic (ready, abort) is not replayed.
const tail = (subject: string) => subject.split('.').slice(4).join('.');
const isData = (subject: string) => subject.split('.')[4] !== 'ctl';

/** `nc` as the all-reduce sees it, noting every data publish and subscription (and bytes delivered). */
function recording(target: NatsConnection, t: Traffic): NatsConnection {
  const publish: NatsConnection['publish'] = (subject, payload, opts) => {
    if (isData(subject)) t.sends.push({ subject: tail(subject), bytes: payload?.length ?? 0 });
    target.publish(subject, payload, opts);
  };
  const subscribe: NatsConnection['subscribe'] = (subject, opts) => {
    if (!isData(subject) || !opts?.callback) return target.subscribe(subject, opts);
    t.subscriptions.push(tail(subject));
    const callback = opts.callback;
    return target.subscribe(subject, {
      ...opts,
      callback: (err, msg) => {
        t.received += msg?.data.length ?? 0;
        callback(err, msg);
      },
    });
  };
  return new Proxy(target, {
    get: (o, prop) => {
      if (prop === 'publish') return publish;
      if (prop === 'subscribe') return subscribe;
      const v: unknown = Reflect.get(o, prop, o);
      return typeof v === 'function' ? v.bind(o) : v;
    },
  });
}

function algorithmOf(name: string | undefined): AllReduceAlgorithm {
  if (!isAllReduceAlgorithm(name)) throw new Error(`member ${index}: unknown algorithm ${name}`);
  return name;
}

async function reduce(algorithm: AllReduceAlgorithm, mode: Mode, generation: number, record: boolean) {
  const traffic: Traffic = { sends: [], subscriptions: [], received: 0 };
  const conn = record ? recording(nc, traffic) : nc;
  const cpu0 = process.cpuUsage();
  const gc0 = gcMs;
  const t0 = performance.now();
  const result = await allReduceSum({
    nc: conn,
    runId: 'bench',
    step: n,
    generation,
    members,
    self: members[index]!,
    data,
    into: sum,
    algorithm,
    frameKey,
    timeoutMs: 120_000,
    ...(mode === 'mac' ? {} : { signingKey, participantKeys }),
    ...(mode === 'bf16' ? { encoding: 'bf16' as const } : {}),
  });
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  // GC entries are delivered asynchronously: let the ones of this round arrive.
  await new Promise((r) => setImmediate(r));
  const gc = gcMs - gc0;
  if (record) recorded.set(`${algorithm} ${mode}`, traffic);
  lastResult = result;
  return { ms, cpuMs: (cpu.user + cpu.system) / 1000, gcMs: gc };
}

// The parent checks that every member holds the same bytes by asking for this digest once every
// member has answered its reduce: hashing 16 MiB (~17 ms) inside the reply would add to the round's
// wall time, and to the time of members still in the round (sharing the cores).
let lastResult: Float32Array | undefined;
function digestOfLast() {
  if (!lastResult) throw new Error(`member ${index}: digest before any reduce`);
  const bytes = new Uint8Array(lastResult.buffer, lastResult.byteOffset, lastResult.byteLength);
  return { digest: createHash('sha256').update(bytes).digest('hex').slice(0, 16) };
}

let rawDone: Promise<void> = Promise.resolve();
const payload = new Uint8Array(4 * 2 ** 20).fill(7);

function trafficOf(algorithm: AllReduceAlgorithm, mode: Mode): Traffic {
  const t = recorded.get(`${algorithm} ${mode}`);
  if (!t)
    throw new Error(
      `member ${index}: no recorded ${algorithm} ${mode} traffic: run "reduce ${algorithm} ${mode} G record" first`,
    );
  return t;
}

async function rawSubscribe(algorithm: AllReduceAlgorithm, mode: Mode, seq: number) {
  const t = trafficOf(algorithm, mode);
  let got = 0;
  let resolve: () => void = () => {};
  rawDone = new Promise<void>((r) => (resolve = r));
  const subs = t.subscriptions.map((s) =>
    nc.subscribe(`raw.${seq}.${s}`, {
      callback: (_e, msg) => {
        got += msg.data.length;
        if (got === t.received) {
          for (const x of subs) x.unsubscribe();
          resolve();
        }
      },
    }),
  );
  if (t.received === 0) resolve();
  await nc.flush();
  return {};
}

async function rawGo(algorithm: AllReduceAlgorithm, mode: Mode, seq: number) {
  const t = trafficOf(algorithm, mode);
  const cpu0 = process.cpuUsage();
  const gc0 = gcMs;
  const t0 = performance.now();
  for (const s of t.sends) nc.publish(`raw.${seq}.${s.subject}`, payload.subarray(0, s.bytes));
  await rawDone;
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  await new Promise((r) => setImmediate(r));
  return { ms, cpuMs: (cpu.user + cpu.system) / 1000, gcMs: gcMs - gc0 };
}

async function answer(line: string): Promise<object> {
  const [what, alg, mode, num, flag] = line.trim().split(' ');
  if (what === 'digest') return digestOfLast();
  if (what === 'reduce') return reduce(algorithmOf(alg), modeOf(mode), Number(num), flag === 'record');
  if (what === 'raw-sub') return rawSubscribe(algorithmOf(alg), modeOf(mode), Number(num));
  if (what === 'raw-go') return rawGo(algorithmOf(alg), modeOf(mode), Number(num));
  throw new Error(`member ${index}: unknown request ${JSON.stringify(line)}`);
}

console.log(JSON.stringify({ ready: true }));
for await (const line of createInterface({ input: process.stdin })) {
  console.log(JSON.stringify(await answer(line)));
}
await nc.close();
