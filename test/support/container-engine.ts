// Finds the container engine tests may use, once per test process: DOCKER_HOST, else the usual
// Docker and podman sockets (`podman system service`, started by scripts/setup-containers.sh), each
// asked GET /_ping. The answer decides for the whole process: either an engine answers and every
// helper in test/support that can use one does (NATS, lora-mpt containers), or none does and they
// start processes. A missing image is then an error, never a quiet fall-back to a process.
import { existsSync } from 'node:fs';
import { request } from 'node:http';

export interface ContainerEngine {
  /** `unix:///run/podman/podman.sock`: what testcontainers is told (DOCKER_HOST). */
  readonly host: string;
  /** From GET /version, e.g. "Podman Engine 4.3.1". */
  readonly name: string;
}

export type EngineProbe = ContainerEngine | { readonly absent: string };

function sockets(): string[] {
  const uid = process.getuid?.() ?? 0;
  const runtimeDir = process.env.XDG_RUNTIME_DIR ?? `/run/user/${uid}`;
  return [
    '/var/run/docker.sock',
    uid === 0 ? '/run/podman/podman.sock' : `${runtimeDir}/podman/podman.sock`,
    `${runtimeDir}/docker.sock`,
  ];
}

function get(socketPath: string, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, timeout: 2000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => {
        body += c.toString();
      });
      res.on('end', () =>
        res.statusCode === 200 ? resolve(body) : reject(new Error(`HTTP ${res.statusCode}`)),
      );
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 2 s')));
    req.on('error', reject);
    req.end();
  });
}

async function probe(): Promise<EngineProbe> {
  const fromEnv = process.env.DOCKER_HOST;
  if (fromEnv !== undefined && !fromEnv.startsWith('unix://')) {
    return { absent: `DOCKER_HOST=${fromEnv}: only unix:// sockets are supported by test/support` };
  }
  const candidates = fromEnv ? [fromEnv.slice('unix://'.length)] : sockets().filter(existsSync);
  if (candidates.length === 0) {
    return {
      absent: `no container engine: DOCKER_HOST is unset and none of ${sockets().join(', ')} exists (scripts/setup-containers.sh starts podman's)`,
    };
  }
  const failures: string[] = [];
  for (const socket of candidates) {
    try {
      await get(socket, '/_ping');
      const version = JSON.parse(await get(socket, '/version')) as {
        Components?: { Name: string; Version: string }[];
      };
      const engine = version.Components?.[0];
      // testcontainers reads its configuration from the environment only. Its Ryuk reaper would
      // pull an image from Docker Hub; the helpers remove their own containers instead.
      process.env.DOCKER_HOST = `unix://${socket}`;
      process.env.TESTCONTAINERS_RYUK_DISABLED ??= 'true';
      return {
        host: `unix://${socket}`,
        name: engine ? `${engine.Name} ${engine.Version}` : 'unknown engine',
      };
    } catch (err) {
      failures.push(`${socket}: ${(err as Error).message}`);
    }
  }
  return { absent: `no container engine answers (${failures.join('; ')})` };
}

let answer: Promise<EngineProbe> | undefined;

/** The engine this test process uses, or why there is none. Probed once. */
export function containerEngine(): Promise<EngineProbe> {
  answer ??= probe();
  return answer;
}
