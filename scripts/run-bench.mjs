#!/usr/bin/env node
// `npm run bench [-- NAME...]`: runs the benchmarks in bench/ (each exports `run()`), one after the
// other in this process, and prints their figures. Names select a subset (file name without .ts).
import { readdirSync } from 'node:fs';
import { register } from 'tsx/esm/api';

register();
const wanted = process.argv.slice(2);
const names = readdirSync(new URL('../bench/', import.meta.url))
  .filter((f) => f.endsWith('.ts'))
  .map((f) => f.slice(0, -3))
  .filter((n) => wanted.length === 0 || wanted.includes(n))
  .sort();
if (names.length === 0) {
  console.error(`no benchmark named ${wanted.join(', ')} in bench/`);
  process.exit(2);
}
for (const name of names) {
  console.log(`\n# bench/${name}.ts`);
  const mod = await import(`../bench/${name}.ts`);
  await mod.run();
}
