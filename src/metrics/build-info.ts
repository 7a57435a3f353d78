// lora_mpt_build_info: one series of value 1 whose labels say what runs — the package version, the
// wire protocol, the compute backend and the device (a GPU's name, "cpu", or "none" on the
// coordinator, which computes nothing) — so a dashboard can join any metric to the build behind it.
import { Gauge, type Registry } from 'prom-client';

export interface BuildInfo {
  readonly version: string;
  readonly protocol: number;
  readonly backend: string;
  readonly device: string;
}

const NAME = 'lora_mpt_build_info';

/** Sets (or replaces) the process's build_info series. */
export function setBuildInfo(registry: Registry, info: BuildInfo): void {
  registry.removeSingleMetric(NAME);
  const gauge = new Gauge({
    name: NAME,
    help: 'What this process runs: version, wire protocol, compute backend and device (value 1)',
    labelNames: ['version', 'protocol', 'backend', 'device'],
    registers: [registry],
  });
  gauge.set({ ...info, protocol: String(info.protocol) }, 1);
}
