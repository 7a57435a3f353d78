// Runs the lora-mpt image as containers for tests, through testcontainers and the engine
// container-engine.ts found: host networking (a container reaches the host's loopback, as the
// processes do), the run's folders bind-mounted at the same paths, and the pod security the chart
// gives (UID 1000, read-only root filesystem with a tmpfs /tmp, no capabilities, no privilege
// escalation). Every container carries this test process's label and is removed by kill();
// containersLeft() lists what is still there.
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { PassThrough } from 'node:stream';
import {
  GenericContainer,
  getContainerRuntimeClient,
  ImageName,
  type StartedTestContainer,
} from 'testcontainers';
import { collectOutput, type LoraCommand } from './lora-output.ts';

/** The image under test: what scripts/build-image.sh tags (LORA_MPT_IMAGE to use another). */
export const LORA_MPT_IMAGE = process.env.LORA_MPT_IMAGE ?? 'localhost/lora-mpt:dev';

/** Label on every container this test process starts. */
export const SESSION_LABEL = 'lora-mpt.test.session';
const session = randomUUID();

/** Throws, naming the command that builds it, when the engine lacks `image`. */
export async function requireImage(image: string = LORA_MPT_IMAGE): Promise<void> {
  const client = await getContainerRuntimeClient();
  if (!(await client.image.exists(ImageName.fromString(image)))) {
    throw new Error(
      `the container engine has no image ${image}: build it with scripts/build-image.sh (or set LORA_MPT_IMAGE)`,
    );
  }
}

/** A host folder or file mounted into a container (usually at the same path). */
export interface Mount {
  readonly source: string;
  readonly target: string;
  readonly mode: 'ro' | 'rw';
}

/** The pod security of the chart's pods, for any container a test starts from the image. */
class HardenedContainer extends GenericContainer {
  constructor(image: string) {
    super(image);
    this.hostConfig.ReadonlyRootfs = true;
    this.withNetworkMode('host')
      .withTmpFs({ '/tmp': 'rw,size=256m' })
      .withDroppedCapabilities('ALL')
      .withSecurityOpt('no-new-privileges')
      .withLabels({ [SESSION_LABEL]: session });
  }

  // Counted from the request on (the engine may create it after this process is gone) until stopped.
  override async start(): Promise<StartedTestContainer> {
    removeOnExit();
    unstopped++;
    const started = await super.start().catch((err: unknown) => {
      unstopped--; // testcontainers removes a container that never became ready
      throw err;
    });
    const stop = started.stop.bind(started);
    let stopped = false;
    started.stop = async (options) => {
      const result = await stop(options);
      if (!stopped) unstopped--;
      stopped = true;
      return result;
    };
    return started;
  }
}

/** Containers of this process requested and not yet stopped. */
let unstopped = 0;
let exitHookSet = false;

/**
 * When this process ends with containers of its own still there (a test run interrupted, a test
 * process that crashed), removes them with the podman CLI: they would outlive it, holding ports,
 * and fail CI's check for leftovers. A terminating signal ends the process through `exit`.
 */
function removeOnExit(): void {
  if (exitHookSet) return;
  exitHookSet = true;
  process.on('exit', () => {
    if (unstopped === 0) return;
    try {
      const ids = execFileSync('podman', ['ps', '-aq', '--filter', `label=${SESSION_LABEL}=${session}`], {
        encoding: 'utf8',
        timeout: 10_000,
      })
        .split('\n')
        .filter((id) => id !== '');
      if (ids.length > 0) execFileSync('podman', ['rm', '-f', ...ids], { stdio: 'ignore', timeout: 30_000 });
    } catch {
      // No podman CLI (another engine) or it failed: CI's check names what is left.
    }
  });
  for (const [signal, code] of [
    ['SIGTERM', 143],
    ['SIGINT', 130],
    ['SIGHUP', 129],
  ] as const) {
    process.once(signal, () => process.exit(code));
  }
}

/** A container of `image` with the chart's pod security; the caller adds command and mounts. */
export function hardenedContainer(image: string = LORA_MPT_IMAGE): GenericContainer {
  return new HardenedContainer(image);
}

/**
 * Starts `lora-mpt <args>` in a container and returns at once, like spawn: a failed start shows in
 * the output and as exited() === null. `mounts` are host folders, usually at the same path inside.
 */
export function startLoraMptContainer(
  name: string,
  args: readonly string[],
  mounts: readonly Mount[],
): LoraCommand {
  const out = collectOutput(name);
  let container: StartedTestContainer | undefined;
  const started = hardenedContainer()
    .withCommand([...args])
    .withBindMounts([...mounts])
    .start()
    .then((c) => {
      container = c;
      return c;
    });
  const exit = started.then(
    async (c) => {
      const client = await getContainerRuntimeClient();
      const docker = client.container.dockerode;
      const logs = await docker.getContainer(c.getId()).logs({ follow: true, stdout: true, stderr: true });
      const stdout = new PassThrough().on('data', (b: Buffer) => out.add(b, 'stdout'));
      const stderr = new PassThrough().on('data', (b: Buffer) => out.add(b, 'stderr'));
      const drained = new Promise((resolve) => logs.on('end', resolve));
      docker.modem.demuxStream(logs, stdout, stderr);
      const { StatusCode } = (await docker.getContainer(c.getId()).wait()) as { StatusCode: number };
      await drained;
      out.end(String(StatusCode));
      return StatusCode;
    },
    (err: Error) => {
      out.add(`container ${name} did not start: ${err.message}\n`, 'stderr');
      out.end('not started');
      return null;
    },
  );
  return {
    ...out,
    exited: () => exit,
    signal(signal) {
      void started
        .then(async (c) => {
          const client = await getContainerRuntimeClient();
          await client.container.dockerode.getContainer(c.getId()).kill({ signal });
        })
        .catch(() => undefined); // already exited
    },
    async kill(signal = 'SIGKILL') {
      if (!(await started.catch(() => undefined))) return;
      const client = await getContainerRuntimeClient();
      await client.container.dockerode
        .getContainer(container!.getId())
        .kill({ signal })
        .catch(() => undefined); // already exited
      await exit;
      await container!.stop({ remove: true, removeVolumes: true });
    },
  };
}

/** Containers of this test process that still exist (running or not), as "name (state)". */
export async function containersLeft(): Promise<string[]> {
  const client = await getContainerRuntimeClient();
  const all = await client.container.dockerode.listContainers({
    all: true,
    filters: { label: [`${SESSION_LABEL}=${session}`] },
  });
  return all.map((c) => `${c.Names.join(',')} (${c.State})`);
}
