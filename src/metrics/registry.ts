// One Prometheus registry per process (never prom-client's global one, so tests and in-process parts
// do not collide), with the process's own metrics (CPU, resident memory, event loop, heap) under their
// standard names (process_*, nodejs_*: what stock Node.js dashboards query) and the labels every series carries: role, run_id and, on a worker,
// worker. A worker learns its run id when it joins: labels set later apply from the next scrape.
import { collectDefaultMetrics, Registry } from 'prom-client';

export type Role = 'coordinator' | 'worker';

export interface ProcessLabels {
  readonly run_id?: string;
  readonly worker?: string;
}

export function processRegistry(role: Role, labels: ProcessLabels): Registry {
  const registry = new Registry();
  setProcessLabels(registry, role, labels);
  collectDefaultMetrics({ register: registry });
  // Gauges that prom-client names like counters (promtool check metrics refuses them); the same
  // counts stay as nodejs_active_{handles,requests,resources} by type.
  for (const what of ['handles', 'requests', 'resources']) {
    registry.removeSingleMetric(`nodejs_active_${what}_total`);
  }
  return registry;
}

export function setProcessLabels(registry: Registry, role: Role, labels: ProcessLabels): void {
  const defined = Object.entries(labels).filter(([, v]) => v !== undefined && v !== '');
  registry.setDefaultLabels({ role, ...Object.fromEntries(defined) });
}
