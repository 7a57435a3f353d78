// What a torch.save pickle may reference: the allow-list of globals (tensor rebuilding, OrderedDict,
// storage classes) and the TypeScript builders that stand in for them. They only build plain data
// records; nothing here can reach the file system, processes or the network.
import type { Dtype } from './dtypes.ts';

export class PickleSecurityError extends Error {
  override readonly name = 'PickleSecurityError';
}
export class PickleFormatError extends Error {
  override readonly name = 'PickleFormatError';
}

/** A storage named by a persistent id: its bytes are the zip entry `<archive>/data/<key>`. */
export interface StorageRef {
  readonly kind: 'storage';
  readonly dtype: Dtype;
  readonly key: string;
  readonly location: string;
  readonly numel: number;
}

/** A tensor view onto a storage, as `torch._utils._rebuild_tensor_v2` describes it (element units). */
export interface TensorRef {
  readonly kind: 'tensor';
  readonly storage: StorageRef;
  readonly offset: number;
  readonly shape: readonly number[];
  readonly stride: readonly number[];
}

export interface GlobalRef {
  readonly kind: 'global';
  readonly qualified: string;
}

const STORAGE_DTYPES: Readonly<Record<string, Dtype>> = {
  'torch FloatStorage': 'F32',
  'torch HalfStorage': 'F16',
  'torch BFloat16Storage': 'BF16',
  'torch DoubleStorage': 'F64',
  'torch LongStorage': 'I64',
  'torch IntStorage': 'I32',
  'torch ShortStorage': 'I16',
  'torch CharStorage': 'I8',
  'torch ByteStorage': 'U8',
  'torch BoolStorage': 'BOOL',
};

/** The only callables: they build plain data (dicts, tensor views); none touches the outside world. */
export const CALLABLES: Readonly<Record<string, (args: readonly unknown[], source: string) => unknown>> = {
  'collections OrderedDict': (args) =>
    new Map(Array.isArray(args[0]) ? (args[0] as [unknown, unknown][]) : []),
  'torch._utils _rebuild_tensor_v2': rebuildTensor,
  'torch._utils _rebuild_tensor': rebuildTensor,
  'torch._utils _rebuild_parameter': (args, source) => {
    if ((args[0] as TensorRef | undefined)?.kind !== 'tensor')
      throw bad(source, '_rebuild_parameter without a tensor');
    return args[0];
  },
};

export const ALLOWED = new Set([...Object.keys(STORAGE_DTYPES), ...Object.keys(CALLABLES)]);

export const bad = (source: string, what: string) =>
  new PickleFormatError(`${source}: malformed torch pickle: ${what}`);

function isIntList(v: unknown): v is number[] {
  return Array.isArray(v) && v.every((x) => Number.isSafeInteger(x) && x >= 0);
}

function rebuildTensor(args: readonly unknown[], source: string): TensorRef {
  const [storage, offset, shape, stride] = args;
  if ((storage as StorageRef | undefined)?.kind !== 'storage') throw bad(source, 'tensor without a storage');
  if (
    !Number.isSafeInteger(offset) ||
    !isIntList(shape) ||
    !isIntList(stride) ||
    shape.length !== stride.length
  ) {
    throw bad(source, 'tensor with a bad offset, size or stride');
  }
  return { kind: 'tensor', storage: storage as StorageRef, offset: offset as number, shape, stride };
}

export function storageFromPid(pid: unknown, source: string): StorageRef {
  // torch.save: ('storage', <storage class>, key, location, numel)
  if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length < 5) {
    throw bad(source, `unknown persistent id ${JSON.stringify(pid)}`);
  }
  const [, cls, key, location, numel] = pid as [string, GlobalRef, unknown, unknown, unknown];
  const dtype =
    cls?.kind === 'global' && Object.hasOwn(STORAGE_DTYPES, cls.qualified)
      ? STORAGE_DTYPES[cls.qualified]
      : undefined;
  if (!dtype) throw bad(source, `storage of unsupported type ${JSON.stringify(cls)}`);
  if (typeof key !== 'string' || !Number.isSafeInteger(numel))
    throw bad(source, 'storage id without key/numel');
  return { kind: 'storage', dtype, key, location: String(location), numel: numel as number };
}
