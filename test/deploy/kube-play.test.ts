import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { assertSameAdapter } from '../support/adapters.ts';
import { LORA_MPT_IMAGE } from '../support/containers.ts';
import { startLoraMpt } from '../support/processes.ts';
import { type TinyRun, tinyRun } from '../support/tiny-run.ts';
import { chartDir, find, helm, type K8sObject, parseObjects, valuesDir } from './chart.ts';
import { type KubePlan, kubePlan, type PlayPod } from './kube-play.ts';
import {
  createSecrets,
  exitCodeOf,
  ipOf,
  leftovers,
  logsOf,
  playClaim,
  playPod,
  podman,
  podmanAbsent,
  removeAll,
} from './podman.ts';

// The chart runs: rendered by the project's helm (test/deploy/values/kube-play.yaml: a tiny MPT on
// the CPU, 2 workers), its pods run by `podman kube play` from the project's image, with the
// rewrites of kube-play.ts (docs/deploy.md, "What the kube-play test stands in for"). The run must
// complete with the adapter a `finetune` process on the host writes from the same ConfigMap.
const absent = podmanAbsent(LORA_MPT_IMAGE);
// Without podman a developer's run skips this file and says why; CI must run it.
const skip = absent !== undefined && !process.env.CI ? absent : false;
const release = `kp${randomBytes(3).toString('hex')}`;
const network = `${release}-net`;
const [repository, tag] = [
  LORA_MPT_IMAGE.slice(0, LORA_MPT_IMAGE.lastIndexOf(':')),
  LORA_MPT_IMAGE.split(':').pop(),
];
// Flags of the run's ConfigMap that are the coordinator's, not training's.
const RUN_POLICY = new Set(['min_workers', 'heartbeat_timeout_ms']);
const PATHS = new Set(['base_model', 'data_path', 'output_dir']);

describe('the chart run by podman kube play', { skip, timeout: 300_000 }, () => {
  let run: TinyRun;
  let objs: K8sObject[];
  let plan: KubePlan;
  let dir: string;
  before(async () => {
    if (absent) throw new Error(`CI needs podman and the image: ${absent}`);
    dir = mkdtempSync(join(tmpdir(), 'lora-mpt-kube-play-'));
    run = await tinyRun([200, 280]);
    objs = parseObjects(
      helm(
        'template',
        release,
        chartDir,
        '--values',
        join(valuesDir, 'kube-play.yaml'),
        '--set',
        `image.repository=${repository}`,
        '--set',
        `image.tag=${tag}`,
      ),
    );
    plan = kubePlan(objs, { natsImage: LORA_MPT_IMAGE, natsCommand: ['nats-server'] });
  });
  after(() => {
    removeAll(release);
    run?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const pods = (component: string): PlayPod[] => plan.pods.filter((p) => p.component === component);
  const waitForLog = async (container: string, pattern: RegExp) => {
    for (let i = 0; i < 600; i++) {
      if (pattern.test(await logsOf(container))) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${container} never logged ${pattern}:\n${await logsOf(container)}`);
  };

  it('completes with the coordinator exiting 0, helm test passing, and the adapter of finetune within 1e-5', async (t) => {
    const fullname = `${release}-lora-mpt`;
    const flags = find(objs, 'ConfigMap', `${fullname}-run`).data ?? {};
    const training = Object.entries(flags).filter(([k]) => !RUN_POLICY.has(k) && !PATHS.has(k));
    const reference = join(run.dir, 'finetune');
    const ft = startLoraMpt('finetune', [
      'finetune',
      '--base_model',
      run.model,
      '--data_path',
      run.data,
      '--output_dir',
      reference,
      ...training.map(([k, v]) => `--${k}=${v}`),
    ]);
    assert.equal(await ft.exited(), 0, ft.output());

    try {
      // The claim: podman makes a named volume of it. Staged as `lora-mpt fetch` would, then given
      // the pods' fsGroup as the kubelet does (group fsGroup, group-writable).
      const claim = plan.claims[0] as { metadata: { name: string } };
      podman(['network', 'create', network]);
      const volume = playClaim(dir, claim, claim.metadata.name, network);
      const mount = '/workspace';
      const into = (p: string) => join(volume, p.slice(mount.length));
      cpSync(run.model, into(flags.base_model!), { recursive: true });
      mkdirSync(join(into(flags.data_path!), '..'), { recursive: true });
      cpSync(run.data, into(flags.data_path!));
      mkdirSync(join(volume, 'outputs'), { recursive: true });
      const fsGroup = (p: string) => {
        chownSync(p, statSync(p).uid, 1000);
        chmodSync(p, statSync(p).isDirectory() ? 0o2775 : 0o664);
        if (statSync(p).isDirectory()) for (const e of readdirSync(p)) fsGroup(join(p, e));
      };
      fsGroup(volume);

      createSecrets(dir, plan.secrets);

      const [nats] = pods('nats');
      playPod(dir, nats!, network);
      await waitForLog(nats!.containers[0]!, /Server is ready/);

      const [coordinator] = pods('coordinator');
      playPod(dir, coordinator!, network);
      const coordinatorIp = ipOf(coordinator!.containers[0]!, network);
      await waitForHealthz(`http://${coordinatorIp}:9400/healthz`, coordinator!.containers[0]!);

      // `helm test`: the chart's test pod, while the coordinator waits for its workers.
      const [probe] = pods('test');
      playPod(dir, probe!, network);
      const probeCode = await exitCodeOf(probe!.containers[0]!, 60_000);
      const probeLog = await logsOf(probe!.containers[0]!);
      assert.equal(probeCode, 0, probeLog);
      const checks = eventsOf(probeLog).filter((e) => e.event === 'probe_passed');
      assert.deepEqual(
        checks.map((e) => e.check),
        ['coordinator', 'nats'],
        probeLog,
      );
      assert.match(checks[0]!.msg, new RegExp(`GET http://${fullname}-coordinator:9400/healthz: 200`));
      assert.match(checks[1]!.msg, /user lora-mpt published and received/);

      const workers = pods('worker');
      assert.deepEqual(
        workers.map((w) => w.name),
        [`${fullname}-worker-0`, `${fullname}-worker-1`],
      );
      for (const w of workers) playPod(dir, w, network);
      // No Job controller replaces a failed pod here: a worker that fails fails the test at once.
      const workerExits = workers.map(async (w) => {
        const c = w.containers[0]!;
        const exit = await exitCodeOf(c, 240_000);
        if (exit !== 0) throw new Error(`${c} exited ${exit}:\n${await logsOf(c)}`);
      });
      const code = await Promise.race([
        exitCodeOf(coordinator!.containers[0]!, 240_000),
        Promise.all(workerExits).then(() => new Promise<never>(() => {})),
      ]);
      const coordinatorLog = await logsOf(coordinator!.containers[0]!);
      assert.equal(code, 0, coordinatorLog);
      await Promise.all(workerExits);
      // Each worker computed, under the id its completion index gives it.
      const computed = new Set(
        eventsOf(coordinatorLog)
          .filter((e) => e.event === 'step_committed')
          .flatMap((e) => Object.keys(e.micro_batches ?? {})),
      );
      assert.deepEqual([...computed].sort(), [`${fullname}-worker-0`, `${fullname}-worker-1`]);

      const diff = await assertSameAdapter(reference, into(flags.output_dir!), 1e-5);
      t.diagnostic(`largest per-tensor ||a-b||/||a||: ${diff.relative.toExponential(2)}`);
    } catch (err) {
      // What every container said, for the reader of a failed run.
      const logs = await Promise.all(
        plan.pods
          .flatMap((p) => p.containers)
          .map(async (c) => `--- ${c}\n${(await logsOf(c)).slice(-3000)}`),
      );
      (err as Error).message += `\n${logs.join('\n')}`;
      throw err;
    } finally {
      removeAll(release);
    }
    assert.deepEqual(leftovers(release), [], 'every pod, volume, secret and network of the test is removed');
  });

  // The JSON events of a container's log (its stdout is no terminal, so lora-mpt writes JSON).
  const eventsOf = (log: string) =>
    log
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { event: string; msg: string; check?: string; micro_batches?: object });

  async function waitForHealthz(url: string, container: string): Promise<void> {
    for (let i = 0; i < 600; i++) {
      const ok = await fetch(url, { signal: AbortSignal.timeout(1000) }).then(
        (r) => r.status === 200,
        () => false,
      );
      if (ok) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${url} never answered 200:\n${await logsOf(container)}`);
  }
});
