// promtool (Debian package `prometheus`, installed by scripts/setup.sh): checks rule files, runs their
// unit tests and lints /metrics text. Tests that need it skip when it is absent, except under CI.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const ALERT_RULES = fileURLToPath(new URL('../../helm/lora-mpt/files/alerts.yaml', import.meta.url));
export const ALERT_TESTS = fileURLToPath(new URL('../deploy/alerts/alerts.test.yaml', import.meta.url));

export const hasPromtool = spawnSync('promtool', ['--version']).status === 0;

/** node:test options: skip without promtool, but not in CI (where setup.sh must have installed it). */
export const needsPromtool =
  hasPromtool || process.env.CI ? {} : { skip: 'promtool not installed: run bash scripts/setup.sh' };

export function promtool(args: readonly string[], input?: string): { ok: boolean; output: string } {
  const r = spawnSync('promtool', args, { encoding: 'utf8', input, timeout: 60_000 });
  return {
    ok: r.status === 0,
    output: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? r.error.message : ''}`,
  };
}
