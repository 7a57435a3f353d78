// Profiles all-reduce members the way bench/all-reduce.ts runs them (one process each, frames
// authenticated): `node --import tsx bench/support/profile-all-reduce.ts MEMBERS ALGORITHM DIR` runs
// 9 rounds of a 16 MiB gradient and leaves one V8 CPU profile per member in DIR (open it in Chrome
// DevTools, or sum its self times per function). Each round prints every member's wall, CPU and GC ms.
// A fourth argument `raw` profiles instead the raw NATS replay of a round's traffic (as the bench
// measures it: after one recorded round, 9 replays), to set the two profiles side by side.
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { startNats } from '../../test/support/nats.ts';
import { Peer } from './peer.ts';

const [membersArg, algorithm, dir, what] = process.argv.slice(2);
const n = Number(membersArg);
if (!Number.isInteger(n) || n < 1 || !algorithm || !dir || (what !== undefined && what !== 'raw')) {
  throw new Error(
    `usage: profile-all-reduce.ts MEMBERS ALGORITHM DIR [raw], got ${process.argv.slice(2).join(' ')}`,
  );
}
const MEMBER = fileURLToPath(new URL('./all-reduce-member.ts', import.meta.url));
const server = await startNats({ prefer: 'process' });
const key = randomBytes(32).toString('hex');
const flags = ['--cpu-prof', `--cpu-prof-dir=${dir}`, '--import', 'tsx'];
const started = await Promise.all(
  Array.from({ length: n }, (_, i) =>
    Peer.start(`member ${i}`, process.execPath, [...flags, MEMBER, server.url, String(i), String(n), key]),
  ),
);
const peers = started.filter((p): p is Peer => typeof p !== 'string');
try {
  if (peers.length < n) throw new Error(started.find((p) => typeof p === 'string') as string);
  if (what === 'raw') await Promise.all(peers.map((p) => p.request(`reduce ${algorithm} signed 99 record`)));
  for (let g = 0; g < 9; g++) {
    if (what === 'raw') await Promise.all(peers.map((p) => p.request(`raw-sub ${algorithm} signed ${g}`)));
    const request = what === 'raw' ? `raw-go ${algorithm} signed ${g}` : `reduce ${algorithm} signed ${g}`;
    const replies = await Promise.all(peers.map((p) => p.request(request)));
    const ms = (x: unknown) => Number(x).toFixed(0);
    console.log(replies.map((r) => `${ms(r.ms)} ms (CPU ${ms(r.cpuMs)}, GC ${ms(r.gcMs)})`).join(', '));
  }
} finally {
  for (const p of peers) p.stop();
  await new Promise((r) => setTimeout(r, 2000)); // the profiles are written as the members exit
  await server.stop();
}
