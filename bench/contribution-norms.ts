// What measuring each contributor costs a shard owner (src/collective/contributions.ts), beside what
// it already does with the same bytes: the float32 sum of n members' parts of a chunk. Prints the
// median time of each over chunks of 16K floats (a 64 KiB frame) and 256K floats (1 MiB), n = 4
// and 16, and their ratio, with the load average (the host is shared: read ratios, not times).
import { loadavg } from 'node:os';
import { ContributionNorms } from '../src/collective/contributions.ts';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function time(f: () => void, reps: number): number {
  const ts: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    f();
    ts.push(performance.now() - t0);
  }
  return median(ts);
}

export async function run(): Promise<void> {
  console.log(
    `load average ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );
  for (const n of [4, 16]) {
    for (const len of [16_384, 262_144]) {
      const parts = Array.from({ length: n }, (_, m) =>
        Float32Array.from({ length: len }, (_, i) => Math.sin(i + m)),
      );
      const out = new Float32Array(len);
      // The owner's summation (shard-owner.ts): (x0 + x1) + x2 + ..., rounded to float32 each step.
      const sum = () => {
        const [x0, x1] = [parts[0]!, parts[1]!];
        for (let i = 0; i < len; i++) out[i] = x0[i]! + x1[i]!;
        for (let m = 2; m < n; m++) {
          const p = parts[m]!;
          for (let i = 0; i < len; i++) out[i]! += p[i]!;
        }
      };
      const norms = new ContributionNorms(parts.map((_, m) => `m${m}`));
      const measure = () => {
        for (let m = 0; m < n; m++) norms.add(m, parts[m]!);
      };
      const reps = len > 100_000 ? 40 : 400;
      time(sum, reps); // warm both up before timing
      time(measure, reps);
      const s = time(sum, reps);
      const c = time(measure, reps);
      console.log(
        `n=${n} chunk=${len} floats: sum ${(s * 1000).toFixed(1)} us, measure ${(c * 1000).toFixed(1)} us, measure/sum ${(c / s).toFixed(2)}`,
      );
    }
  }
  console.log(
    `load average ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );
}
