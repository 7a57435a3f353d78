// Child process of test/model/backend.test.ts: starts the tensorflow backend with the intra-op thread
// count given as argument, runs one matmul, and prints {threads, summary}: the OS threads of this
// process (TensorFlow starts its intra-op pool with the context) and the backend's log line.
import { readdirSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../../src/model/backend.ts';

const active = await initBackend('tensorflow', { numThreads: Number(process.argv[2]) });
const a = tf.randomNormal([256, 256]);
tf.matMul(a, a).dataSync();
console.log(JSON.stringify({ threads: readdirSync('/proc/self/task').length, summary: active.summary }));
