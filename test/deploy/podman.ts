// The podman CLI for the kube-play test: plays a KubePlan's pods on one podman network, waits for
// containers, and removes everything whose name starts with the test's release name (pods, the
// claim's and secret volumes' podman volumes, podman secrets, the network), also after a failure.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { root } from './chart.ts';
import type { PlayPod, PodmanSecret } from './kube-play.ts';

// runc, and ulimits runc may set on these hosts (docs/deploy.md, "The image").
const env = {
  ...process.env,
  CONTAINERS_CONF: process.env.CONTAINERS_CONF ?? join(root, 'scripts', 'containers.conf'),
};

/** Why podman cannot run the test here, or undefined when it can. */
export function podmanAbsent(image: string): string | undefined {
  const v = spawnSync('podman', ['--version'], { encoding: 'utf8', env });
  if (v.status !== 0)
    return `no podman (${v.error?.message ?? v.stderr.trim()}): run scripts/setup-containers.sh`;
  const i = spawnSync('podman', ['image', 'exists', image], { env });
  if (i.status !== 0)
    return `podman has no image ${image}: build it with scripts/build-image.sh (or set LORA_MPT_IMAGE)`;
  return undefined;
}

export function podman(args: readonly string[]): string {
  try {
    return execFileSync('podman', args, { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`podman ${args.join(' ')}: ${e.stderr?.trim() || e.message}`);
  }
}

/** Runs podman without blocking the event loop; resolves with its exit code and output. */
export function podmanAsync(args: readonly string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn('podman', args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('close', (code) => resolve({ code, out }));
  });
}

/** podman wants a named pipe or a file, not node's socket, for `-`: each goes through a file in `dir`. */
export function createSecrets(dir: string, secrets: readonly PodmanSecret[]): void {
  for (const s of secrets) {
    const file = join(dir, `${s.name}.secret`);
    writeFileSync(file, s.content, { mode: 0o600 });
    try {
      podman(['secret', 'create', s.name, file]);
    } finally {
      rmSync(file);
    }
  }
}

const yamlOf = (docs: readonly object[]) => docs.map((d) => stringify(d)).join('---\n');

/** `podman kube play` of a claim (podman makes a named volume of it); returns the volume's path. */
export function playClaim(dir: string, claim: object, name: string, network: string): string {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, yamlOf([claim]));
  podman(['kube', 'play', '--network', network, file]);
  return podman(['volume', 'inspect', name, '--format', '{{.Mountpoint}}']).trim();
}

/** `podman kube play` of one pod on `network`, reachable there by its Services' names. */
export function playPod(dir: string, pod: PlayPod, network: string): void {
  const file = join(dir, `${pod.name}.yaml`);
  writeFileSync(file, yamlOf(pod.docs));
  const aliases = pod.aliases.map((a) => `alias=${a}`).join(',');
  podman(['kube', 'play', '--network', aliases ? `${network}:${aliases}` : network, file]);
}

export function ipOf(container: string, network: string): string {
  return podman([
    'inspect',
    container,
    '--format',
    `{{(index .NetworkSettings.Networks "${network}").IPAddress}}`,
  ]).trim();
}

/** The container's exit code once it has exited; an error after `timeoutMs`. */
export async function exitCodeOf(container: string, timeoutMs: number): Promise<number> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${container} still running after ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  try {
    const r = await Promise.race([podmanAsync(['wait', container]), late]);
    if (r.code !== 0) throw new Error(`podman wait ${container}: ${r.out.trim()}`);
    return Number(r.out.trim());
  } finally {
    clearTimeout(timer);
  }
}

export const logsOf = (container: string) => podmanAsync(['logs', container]).then((r) => r.out);

/** Everything of the test still there: pods, volumes, secrets, networks named `<prefix>...`. */
export function leftovers(prefix: string): string[] {
  const names = (args: string[]) =>
    podman(args)
      .split('\n')
      .map((s) => s.trim())
      .filter((s) => s.startsWith(prefix));
  return [
    ...names(['pod', 'ls', '--format', '{{.Name}}']).map((n) => `pod ${n}`),
    ...names(['ps', '-a', '--format', '{{.Names}}']).map((n) => `container ${n}`),
    ...names(['volume', 'ls', '--format', '{{.Name}}']).map((n) => `volume ${n}`),
    ...names(['secret', 'ls', '--format', '{{.Name}}']).map((n) => `secret ${n}`),
    ...names(['network', 'ls', '--format', '{{.Name}}']).map((n) => `network ${n}`),
  ];
}

/** Removes whatever leftovers() lists, pods first (they hold the volumes and the network). */
export function removeAll(prefix: string): void {
  const rm: Record<string, string[]> = {
    pod: ['pod', 'rm', '-f', '-t', '0'],
    container: ['rm', '-f', '-t', '0'],
    volume: ['volume', 'rm', '-f'],
    secret: ['secret', 'rm'],
    network: ['network', 'rm', '-f'],
  };
  for (const kind of Object.keys(rm)) {
    const left = leftovers(prefix)
      .filter((l) => l.startsWith(`${kind} `))
      .map((l) => l.slice(kind.length + 1));
    if (left.length > 0) spawnSync('podman', [...rm[kind]!, ...left], { env, stdio: 'ignore' });
  }
}
