// The coordinator's status page on its metrics port: `/` (status-page.html, self-contained) and
// `/api/status` (the JSON it polls, run-status.ts). For clusters without Grafana:
// `kubectl port-forward svc/<release>-lora-mpt-coordinator 9400` and a browser on localhost:9400.
import { readFileSync } from 'node:fs';
import type { Page } from '../metrics/http-server.ts';
import type { RunStatus } from './run-status.ts';
import type { StepDriver } from './step-driver.ts';

const PAGE = readFileSync(new URL('./status-page.html', import.meta.url), 'utf8');

export function statusPages(status: RunStatus, driver: StepDriver): Record<string, () => Page> {
  return {
    '/': () => ({ contentType: 'text/html; charset=utf-8', body: PAGE }),
    '/api/status': () => {
      const members = driver.members
        .all()
        .map((m) => ({ id: m.link.id, phase: m.phase, lastSeen: m.lastSeen }));
      const snapshot = status.snapshot(members, driver.describe());
      return { contentType: 'application/json', body: JSON.stringify(snapshot) };
    },
  };
}
