// A restricted unpickler for the data.pkl inside torch.save files. It interprets pickle opcodes itself
// (nothing is ever executed) and admits only the globals torch.save uses for tensors and state dicts
// (torch-pickle-globals.ts); any other global — os.system, builtins.eval, … — is refused, naming it.
import {
  ALLOWED,
  bad,
  CALLABLES,
  type GlobalRef,
  PickleSecurityError,
  storageFromPid,
} from './torch-pickle-globals.ts';

export {
  PickleFormatError,
  PickleSecurityError,
  type StorageRef,
  type TensorRef,
} from './torch-pickle-globals.ts';

const MARK = Symbol('mark');

/** Interprets a torch.save data.pkl and returns its top-level object (dicts become Maps). */
export function loadTorchPickle(bytes: Uint8Array, source: string): unknown {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const text = new TextDecoder('utf-8', { fatal: true });
  const stack: unknown[] = [];
  const memo = new Map<number, unknown>();
  let p = 0;
  const need = (n: number) => {
    if (p + n > bytes.length) throw bad(source, `truncated at byte ${p}`);
    const at = p;
    p += n;
    return at;
  };
  const pop = (): unknown => {
    if (stack.length === 0) throw bad(source, `stack underflow at byte ${p}`);
    return stack.pop();
  };
  const popMark = (): unknown[] => {
    const m = stack.lastIndexOf(MARK);
    if (m < 0) throw bad(source, `no MARK before byte ${p}`);
    const items = stack.splice(m);
    items.shift();
    return items;
  };
  const top = (): unknown => stack[stack.length - 1];
  const list = (v: unknown): unknown[] => {
    if (!Array.isArray(v)) throw bad(source, `APPEND(S) on a non-list at byte ${p}`);
    return v;
  };
  const str = (n: number) => text.decode(bytes.subarray(need(n), p));
  const line = () => {
    const end = bytes.indexOf(0x0a, p);
    if (end < 0) throw bad(source, 'unterminated GLOBAL');
    const s = new TextDecoder().decode(bytes.subarray(p, end));
    p = end + 1;
    return s;
  };
  const global = (module: string, name: string): GlobalRef => {
    const qualified = `${module} ${name}`;
    if (!ALLOWED.has(qualified)) {
      throw new PickleSecurityError(
        `${source}: refusing to load: the pickle references the global "${module}.${name}", which a PyTorch checkpoint has no reason to contain (only tensor-rebuilding globals are allowed); the file may be malicious — do not load it with torch.load either`,
      );
    }
    return { kind: 'global', qualified };
  };
  const setItems = (dict: unknown, kv: unknown[]) => {
    if (!(dict instanceof Map)) throw bad(source, 'SETITEM(S) on a non-dict');
    for (let i = 0; i + 1 < kv.length; i += 2) dict.set(kv[i], kv[i + 1]);
  };
  for (;;) {
    const op = bytes[need(1)]!;
    switch (op) {
      case 0x80:
        need(1);
        break; // PROTO
      case 0x95:
        need(8);
        break; // FRAME
      case 0x2e:
        return pop(); // STOP
      case 0x28:
        stack.push(MARK);
        break; // MARK
      case 0x7d:
        stack.push(new Map());
        break; // EMPTY_DICT
      case 0x5d:
        stack.push([]);
        break; // EMPTY_LIST
      case 0x29:
        stack.push([]);
        break; // EMPTY_TUPLE
      case 0x64: {
        // DICT
        const d = new Map();
        setItems(d, popMark());
        stack.push(d);
        break;
      }
      case 0x6c:
      case 0x74:
        stack.push(popMark());
        break; // LIST, TUPLE
      case 0x85:
        stack.push([pop()]);
        break; // TUPLE1
      case 0x86: {
        const b = pop();
        stack.push([pop(), b]);
        break;
      } // TUPLE2
      case 0x87: {
        const c = pop();
        const b = pop();
        stack.push([pop(), b, c]);
        break;
      } // TUPLE3
      case 0x61: {
        const v = pop();
        list(top()).push(v);
        break;
      } // APPEND
      case 0x65: {
        const vs = popMark();
        list(top()).push(...vs);
        break;
      } // APPENDS
      case 0x73: {
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      } // SETITEM
      case 0x75: {
        const kv = popMark();
        setItems(top(), kv);
        break;
      } // SETITEMS
      case 0x71:
        memo.set(bytes[need(1)]!, top());
        break; // BINPUT
      case 0x72:
        memo.set(dv.getUint32(need(4), true), top());
        break; // LONG_BINPUT
      case 0x94:
        memo.set(memo.size, top());
        break; // MEMOIZE
      case 0x68:
      case 0x6a: {
        // BINGET, LONG_BINGET
        const i = op === 0x68 ? bytes[need(1)]! : dv.getUint32(need(4), true);
        if (!memo.has(i)) throw bad(source, `memo ${i} read before it was written`);
        stack.push(memo.get(i));
        break;
      }
      case 0x4a:
        stack.push(dv.getInt32(need(4), true));
        break; // BININT
      case 0x4b:
        stack.push(bytes[need(1)]!);
        break; // BININT1
      case 0x4d:
        stack.push(dv.getUint16(need(2), true));
        break; // BININT2
      case 0x8a:
      case 0x8b: {
        // LONG1, LONG4: little-endian two's complement
        const n = op === 0x8a ? bytes[need(1)]! : dv.getUint32(need(4), true);
        const at = need(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[at + i]!);
        if (n > 0 && bytes[at + n - 1]! & 0x80) v -= 1n << BigInt(8 * n);
        if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER))
          throw bad(source, 'integer too large');
        stack.push(Number(v));
        break;
      }
      case 0x47:
        stack.push(dv.getFloat64(need(8), false));
        break; // BINFLOAT (big-endian)
      case 0x4e:
        stack.push(null);
        break; // NONE
      case 0x88:
        stack.push(true);
        break; // NEWTRUE
      case 0x89:
        stack.push(false);
        break; // NEWFALSE
      case 0x58:
        stack.push(str(dv.getUint32(need(4), true)));
        break; // BINUNICODE
      case 0x8c:
        stack.push(str(bytes[need(1)]!));
        break; // SHORT_BINUNICODE
      case 0x42: {
        const n = dv.getUint32(need(4), true);
        stack.push(bytes.slice(need(n), p));
        break;
      } // BINBYTES
      case 0x43: {
        const n = bytes[need(1)]!;
        stack.push(bytes.slice(need(n), p));
        break;
      } // SHORT_BINBYTES
      case 0x30:
        pop();
        break; // POP
      case 0x32:
        stack.push(top());
        break; // DUP
      case 0x63: {
        const module = line();
        stack.push(global(module, line()));
        break;
      } // GLOBAL
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string')
          throw bad(source, 'STACK_GLOBAL of non-strings');
        stack.push(global(module, name));
        break;
      }
      case 0x51:
        stack.push(storageFromPid(pop(), source));
        break; // BINPERSID
      case 0x52: {
        // REDUCE
        const args = pop();
        const fn = pop() as GlobalRef;
        const impl =
          fn?.kind === 'global' && Object.hasOwn(CALLABLES, fn.qualified)
            ? CALLABLES[fn.qualified]
            : undefined;
        if (!impl || !Array.isArray(args)) throw bad(source, `call of non-callable ${JSON.stringify(fn)}`);
        stack.push(impl(args, source));
        break;
      }
      case 0x62: {
        // BUILD: only an OrderedDict's attribute state (a state dict's `_metadata`), dropped
        pop();
        if (!(top() instanceof Map)) throw bad(source, 'BUILD on something other than a dict');
        break;
      }
      default:
        throw bad(source, `opcode 0x${op.toString(16)} at byte ${p - 1} is not one torch.save writes`);
    }
  }
}
