// A gauge that does not exist until it is first set. prom-client exposes an unlabelled gauge as 0
// from the start, and a loss, learning rate or MFU of 0 before any step is a value nobody measured:
// these appear on /metrics (and in Prometheus) from their first real value on.
import { Gauge, type Registry } from 'prom-client';

export interface LazyGauge {
  set(value: number): void;
}

export function lazyGauge(registry: Registry, name: string, help: string): LazyGauge {
  let gauge: Gauge | undefined;
  return {
    set(value) {
      gauge ??= new Gauge({ name, help, registers: [registry] });
      gauge.set(value);
    },
  };
}
