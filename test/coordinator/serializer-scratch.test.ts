// The coordinator encodes micro-batches into one reused buffer (grpc-server.ts), which is only right
// while grpc-js copies what a serializer returns before it serializes the next message. Held to
// that with real grpc-js on loopback: a server streams distinct messages written back to back in one
// synchronous burst (and more than the stream's buffer takes), each encoded into the same scratch
// buffer; the client must receive every one intact.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  credentials,
  makeGenericClientConstructor,
  Server,
  ServerCredentials,
  type ServerDuplexStream,
  type ServiceDefinition,
} from '@grpc/grpc-js';
import { ScratchBuffer } from '../../src/protocol/micro-batch-encoding.ts';

const scratch = new ScratchBuffer();
/** Message k: 6,000 bytes (a micro-batch's size), every byte (k + i) mod 251. */
const messageOf = (k: number): Buffer => Buffer.from(Array.from({ length: 6000 }, (_, i) => (k + i) % 251));

const service: ServiceDefinition = {
  stream: {
    path: '/test.Scratch/Stream',
    requestStream: true,
    responseStream: true,
    requestSerialize: (n: number) => Buffer.from(String(n)),
    requestDeserialize: (b: Buffer) => Number(b.toString()),
    // Into the one scratch buffer, as the coordinator's micro-batch encoder does.
    responseSerialize: (k: number) => {
      const out = scratch.take(6000);
      messageOf(k).copy(out);
      return out;
    },
    responseDeserialize: (b: Buffer) => Buffer.from(b),
  },
};

describe("the coordinator's scratch buffer for micro-batch messages", () => {
  it('is safe with grpc-js: messages written back to back arrive intact', async () => {
    const server = new Server();
    const COUNT = 400; // 2.4 MB in one burst: well past the HTTP/2 stream's window
    server.addService(service, {
      stream: (call: ServerDuplexStream<number, number>) => {
        call.once('data', () => {
          for (let k = 0; k < COUNT; k++) call.write(k);
          call.end();
        });
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) =>
        e ? reject(e) : resolve(p),
      ),
    );
    const Client = makeGenericClientConstructor(service, 'Scratch');
    const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
    try {
      const got: Buffer[] = await new Promise((resolve, reject) => {
        const call = (client as unknown as { stream(): NodeJS.ReadWriteStream }).stream();
        const out: Buffer[] = [];
        call.on('data', (b: Buffer) => out.push(b));
        call.on('end', () => resolve(out));
        call.on('error', reject);
        call.write(1 as never);
      });
      assert.equal(got.length, COUNT);
      for (const [k, b] of got.entries()) assert.ok(b.equals(messageOf(k)), `message ${k} arrived changed`);
    } finally {
      client.close();
      server.forceShutdown();
    }
  });
});
