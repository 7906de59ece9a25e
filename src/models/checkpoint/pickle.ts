/**
 * A data-only unpickler for torch.save pickles, built on npm `pickleparser`.
 *
 * Why pickleparser is safe enough here: it never evaluates anything itself; the only callables that can
 * reach its stack come from the name resolver (GLOBAL / STACK_GLOBAL / INST), the persistent-id resolver
 * and the extension resolver. We give it a resolver that knows a fixed whitelist of tensor/storage/
 * OrderedDict names and throws on everything else, an extension resolver that always throws, and
 * `Map` dictionaries (so SETITEM(S) keys such as '__proto__' cannot touch object prototypes). The
 * whitelisted functions are fresh closures per parse and the objects they return are frozen, so a
 * BUILD opcode cannot mutate anything that outlives the parse or reshape a tensor after its checks.
 * Its known gaps do not matter for torch pickles (protocol 2, EMPTY_DICT + SETITEMS): DICT (protocol 0/1)
 * writes properties instead of Map entries; LONG1 is read unsigned and at most 8 bytes, so Python ints
 * below -2**31 come out wrong (torch never pickles such sizes/strides/offsets) and the 10-byte legacy magic
 * number is compared as bytes instead (see torch.ts).
 */
import { BufferReader, Parser } from 'pickleparser';
import { CheckpointError, TensorDType, TENSOR_DTYPES } from './tensor';

/**
 * Limits of the opcode pre-scan. pickleparser keeps its stack, mark stack and memo in unbounded JS arrays/Maps,
 * so a small (or well-compressed) pickle of repeated NONE/EMPTY_DICT/DUP opcodes grows them until V8 aborts with
 * an uncatchable "invalid size" error. It has no hooks to bound them, so every pickle is walked once here first
 * (opcode lengths only, nothing is built) and refused when it would exceed these. Real torch state_dict pickles
 * use ~20-30 opcodes per tensor, a stack of a few thousand (SETITEMS batches of 1000) and a memo of a few per
 * tensor: 100k-tensor checkpoints stay far below every limit.
 */
export const PICKLE_LIMITS = {
  /** Opcodes in one pickle. */
  maxOps: 16_000_000,
  /** Opcodes that allocate an object (containers, strings, numbers, calls). */
  maxObjects: 4_000_000,
  /** Items on the stack plus open MARKs at any time. */
  maxStack: 1_000_000,
  /** Memo writes (PUT/BINPUT/LONG_BINPUT/MEMOIZE). */
  maxMemo: 2_000_000,
};

// Opcode argument kinds: fixed byte counts, a newline-terminated line (or two), or a length prefix of n bytes.
type ArgKind = number | 'line' | 'line2' | { prefix: 1 | 4 | 8 };
// Stack effect: a fixed delta, or 'mark' (pops to the last MARK; +1 when it leaves an object behind).
interface Op {
  arg: ArgKind;
  effect: number | 'mark' | 'mark+1';
  allocates?: boolean;
  memo?: boolean;
}
const OPS = new Map<number, Op>();
const def = (codes: string | number[], op: Op) => {
  for (const c of typeof codes === 'string' ? [...codes].map((ch) => ch.charCodeAt(0)) : codes) OPS.set(c, op);
};
def('(', { arg: 0, effect: 0 }); // MARK (handled specially)
def('.', { arg: 0, effect: 0 }); // STOP
def('0', { arg: 0, effect: -1 }); // POP
def('1', { arg: 0, effect: 'mark' }); // POP_MARK
def('2', { arg: 0, effect: 1 }); // DUP
def('N', { arg: 0, effect: 1 });
def([0x88, 0x89], { arg: 0, effect: 1 }); // NEWTRUE, NEWFALSE
def('}])', { arg: 0, effect: 1, allocates: true }); // EMPTY_DICT, EMPTY_LIST, EMPTY_TUPLE
def([0x8f], { arg: 0, effect: 1, allocates: true }); // EMPTY_SET
def('a', { arg: 0, effect: -1 }); // APPEND
def('s', { arg: 0, effect: -2 }); // SETITEM
def('b', { arg: 0, effect: -1 }); // BUILD
def('R', { arg: 0, effect: -1, allocates: true }); // REDUCE
def([0x81], { arg: 0, effect: -1, allocates: true }); // NEWOBJ
def([0x92], { arg: 0, effect: -2, allocates: true }); // NEWOBJ_EX
def([0x93], { arg: 0, effect: -1, allocates: true }); // STACK_GLOBAL
def('Q', { arg: 0, effect: 0, allocates: true }); // BINPERSID
def([0x85], { arg: 0, effect: 0, allocates: true }); // TUPLE1
def([0x86], { arg: 0, effect: -1, allocates: true }); // TUPLE2
def([0x87], { arg: 0, effect: -2, allocates: true }); // TUPLE3
def('eu', { arg: 0, effect: 'mark' }); // APPENDS, SETITEMS
def([0x90], { arg: 0, effect: 'mark' }); // ADDITEMS
def('dlto', { arg: 0, effect: 'mark+1', allocates: true }); // DICT, LIST, TUPLE, OBJ
def([0x91], { arg: 0, effect: 'mark+1', allocates: true }); // FROZENSET
def([0x94], { arg: 0, effect: 0, memo: true }); // MEMOIZE
def([0x97, 0x98], { arg: 0, effect: 0 }); // NEXT_BUFFER, READONLY_BUFFER (refused by the parser)
def('Kh', { arg: 1, effect: 1 }); // BININT1, BINGET
def('q', { arg: 1, effect: 0, memo: true }); // BINPUT
def([0x80], { arg: 1, effect: 0 }); // PROTO
def([0x82], { arg: 1, effect: 1 }); // EXT1
def('M', { arg: 2, effect: 1 }); // BININT2
def([0x83], { arg: 2, effect: 1 }); // EXT2
def('Jj', { arg: 4, effect: 1 }); // BININT, LONG_BINGET
def('r', { arg: 4, effect: 0, memo: true }); // LONG_BINPUT
def([0x84], { arg: 4, effect: 1 }); // EXT4
def('G', { arg: 8, effect: 1 }); // BINFLOAT
def([0x95], { arg: 8, effect: 0 }); // FRAME
def('ILFSVg', { arg: 'line', effect: 1, allocates: true }); // INT, LONG, FLOAT, STRING, UNICODE, GET
def('P', { arg: 'line', effect: 1, allocates: true }); // PERSID
def('p', { arg: 'line', effect: 0, memo: true }); // PUT
def('c', { arg: 'line2', effect: 1, allocates: true }); // GLOBAL
def('i', { arg: 'line2', effect: 'mark+1', allocates: true }); // INST
def('UC', { arg: { prefix: 1 }, effect: 1, allocates: true }); // SHORT_BINSTRING, SHORT_BINBYTES
def([0x8c, 0x8a], { arg: { prefix: 1 }, effect: 1, allocates: true }); // SHORT_BINUNICODE, LONG1
def('TBX', { arg: { prefix: 4 }, effect: 1, allocates: true }); // BINSTRING, BINBYTES, BINUNICODE
def([0x8b], { arg: { prefix: 4 }, effect: 1, allocates: true }); // LONG4
def([0x8d, 0x8e, 0x96], { arg: { prefix: 8 }, effect: 1, allocates: true }); // BINUNICODE8, BINBYTES8, BYTEARRAY8

/**
 * Walks the opcodes of the pickle starting at `start` up to its STOP without building anything, and throws a
 * one-line CheckpointError when it is malformed or exceeds PICKLE_LIMITS. Returns the position after STOP.
 */
export function scanPickle(bytes: Uint8Array, start: number, file: string, part: string): number {
  const fail = (what: string): never => {
    throw new CheckpointError(`checkpoint ${file}: corrupt pickle in ${part} (${what})`);
  };
  const bomb = (what: string, limit: number): never => {
    throw new CheckpointError(
      `checkpoint ${file}: pickle in ${part} exceeds ${limit} ${what} (far more than any state_dict needs; refusing a possible pickle bomb)`,
    );
  };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let p = start;
  let ops = 0;
  let objects = 0;
  let memo = 0;
  let depth = 0; // items on the current stack
  let saved = 0; // items on the stacks saved by open MARKs
  const marks: number[] = [];
  const lineEnd = (from: number): number => {
    const nl = bytes.indexOf(0x0a, from);
    if (nl < 0) fail(`truncated: unterminated text argument at byte ${from}`);
    return nl + 1;
  };
  for (;;) {
    if (p >= bytes.length) fail('truncated: no STOP opcode');
    const code = bytes[p];
    const op = OPS.get(code);
    if (op === undefined) fail(`unknown opcode 0x${code.toString(16)} at byte ${p - start}`);
    p += 1;
    if (++ops > PICKLE_LIMITS.maxOps) bomb('opcodes', PICKLE_LIMITS.maxOps);
    const arg = op!.arg;
    if (typeof arg === 'number') p += arg;
    else if (arg === 'line') p = lineEnd(p);
    else if (arg === 'line2') p = lineEnd(lineEnd(p));
    else {
      if (p + arg.prefix > bytes.length) fail('truncated');
      const n =
        arg.prefix === 1 ? bytes[p] : arg.prefix === 4 ? view.getUint32(p, true) : Number(view.getBigUint64(p, true));
      p += arg.prefix + n;
    }
    if (p > bytes.length) fail('truncated');
    if (code === 0x2e) return p; // STOP
    if (op!.allocates && ++objects > PICKLE_LIMITS.maxObjects) bomb('objects', PICKLE_LIMITS.maxObjects);
    if (op!.memo && ++memo > PICKLE_LIMITS.maxMemo) bomb('memo entries', PICKLE_LIMITS.maxMemo);
    if (code === 0x28) {
      marks.push(depth);
      saved += depth;
      depth = 0;
    } else if (op!.effect === 'mark' || op!.effect === 'mark+1') {
      // Popping to a missing MARK is malformed; the parser reports it, the scan only keeps its counts sane.
      const outer = marks.pop() ?? 0;
      saved -= outer;
      depth = outer + (op!.effect === 'mark+1' ? 1 : 0);
    } else {
      depth = Math.max(0, depth + op!.effect);
    }
    if (depth + saved + marks.length > PICKLE_LIMITS.maxStack) bomb('stack items', PICKLE_LIMITS.maxStack);
  }
}

/** The bytes behind a pickleparser BufferReader (it exposes only its position and length). */
function readerBytes(reader: BufferReader): Uint8Array {
  const buf = (reader as unknown as { _buffer?: unknown })._buffer;
  if (!(buf instanceof Uint8Array) || buf.byteLength !== reader.length) {
    throw new Error('pickleparser BufferReader layout changed: cannot pre-scan pickles (update scanPickle)');
  }
  return buf;
}

/** torch.<Name>Storage class names (legacy typed storages, still used in torch.save's persistent ids). */
const STORAGE_CLASSES: Readonly<Record<string, TensorDType>> = {
  FloatStorage: 'float32',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  DoubleStorage: 'float64',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ShortStorage: 'int16',
  CharStorage: 'int8',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
};

/** What a whitelisted `torch.<X>Storage` global unpickles to: a token carrying the element dtype. */
export interface StorageTypeToken {
  readonly kind: 'storage-type';
  readonly dtype: TensorDType;
}

export interface TorchPickleHooks {
  /** Called for BINPERSID/PERSID; returns the storage object that tensor rebuilds will receive. */
  persistentLoad(pid: unknown): unknown;
  /** torch._utils._rebuild_tensor(_v2)(storage, storage_offset, size, stride, ...). */
  rebuildTensor(storage: unknown, offset: unknown, size: unknown, stride: unknown): unknown;
}

export function isStorageTypeToken(x: unknown): x is StorageTypeToken {
  return typeof x === 'object' && x !== null && (x as StorageTypeToken).kind === 'storage-type';
}

/** One-line rendering of an arbitrary message or name for error texts. */
export function oneLine(text: string, max = 200): string {
  const flat = text.replace(/[\r\n\t]+/g, ' ').replace(/[\u0000-\u001f\u007f]/g, '?');
  return flat.length > max ? `${flat.slice(0, max)}...` : flat;
}

type Callable = (...args: unknown[]) => unknown;

/** The whitelist, as fresh closures for one parse. Keys are 'module.name'. */
function whitelist(file: string, hooks: TorchPickleHooks): Map<string, Callable | object> {
  const names = new Map<string, Callable | object>();
  const rebuildTensor: Callable = (storage, offset, size, stride) => hooks.rebuildTensor(storage, offset, size, stride);
  const rebuildParameter: Callable = (data) => data; // requires_grad / hooks / state mean nothing here
  const tensorType = Object.freeze({ kind: 'tensor-type' });
  names.set('torch._utils._rebuild_tensor_v2', rebuildTensor);
  names.set('torch._utils._rebuild_tensor', rebuildTensor);
  names.set('torch._utils._rebuild_parameter', rebuildParameter);
  names.set('torch._utils._rebuild_parameter_with_state', rebuildParameter);
  names.set('torch.Tensor', tensorType);
  // Tensors carrying Python attributes are pickled as _rebuild_from_type_v2(func, torch.Tensor, args, state).
  names.set('torch._tensor._rebuild_from_type_v2', (func, newType, args) => {
    if (func !== rebuildTensor || newType !== tensorType || !Array.isArray(args)) {
      throw new CheckpointError(`checkpoint ${file}: _rebuild_from_type_v2 is only supported for plain torch.Tensor`);
    }
    return rebuildTensor(...args);
  });
  names.set('collections.OrderedDict', (...args: unknown[]) => {
    const dict = new Map<unknown, unknown>();
    const items = args[0];
    if (Array.isArray(items)) {
      for (const pair of items) if (Array.isArray(pair) && pair.length === 2) dict.set(pair[0], pair[1]);
    }
    return dict;
  });
  names.set('torch.device', (type, index) =>
    typeof type === 'string' && (index === undefined || typeof index === 'number')
      ? index === undefined ? type : `${type}:${index}`
      : type,
  );
  names.set('torch.Size', (dims) => (Array.isArray(dims) ? Object.freeze([...dims]) : dims)); // a tuple subclass
  for (const [cls, dtype] of Object.entries(STORAGE_CLASSES)) {
    names.set(`torch.${cls}`, Object.freeze({ kind: 'storage-type', dtype }));
  }
  return names;
}

/**
 * Unpickles one pickle from `reader` (advancing it past STOP). Only whitelisted globals resolve;
 * anything else fails with `checkpoint <file>: refusing to load global 'mod.name' (...)`.
 * Other failures are reported as a corrupt pickle in `part`.
 */
export function unpickleTorch(reader: BufferReader, file: string, part: string, hooks: TorchPickleHooks): unknown {
  const names = whitelist(file, hooks);
  const parser = new Parser({
    nameResolver: {
      resolve: (module: unknown, name: unknown) => {
        const fqn =
          typeof module === 'string' && typeof name === 'string' ? `${module}.${name}` : '<non-string name>';
        const found = names.get(fqn);
        if (found !== undefined) return found as Callable;
        if (/^torch\.[A-Za-z0-9]*Storage$/.test(fqn)) {
          throw new CheckpointError(
            `checkpoint ${file}: unsupported storage type '${oneLine(fqn)}' (dtypes supported: ${TENSOR_DTYPES.join(', ')})`,
          );
        }
        throw new CheckpointError(
          `checkpoint ${file}: refusing to load global '${oneLine(fqn)}' (only tensor/storage/OrderedDict globals are allowed)`,
        );
      },
    },
    persistentResolver: { resolve: (pid: unknown) => hooks.persistentLoad(pid) },
    extensionResolver: {
      resolve: (code: number) => {
        throw new CheckpointError(`checkpoint ${file}: refusing pickle extension code ${code} in ${part}`);
      },
    },
    unpicklingTypeOfDictionary: 'Map',
    unpicklingTypeOfSet: 'array',
  });
  scanPickle(readerBytes(reader), reader.position, file, part);
  try {
    return parser.read(reader);
  } catch (e) {
    if (e instanceof CheckpointError) throw e;
    throw new CheckpointError(`checkpoint ${file}: corrupt pickle in ${part} (${oneLine(String((e as Error)?.message ?? e))})`);
  }
}

/** Parses a pickle that must contain plain data only (legacy header records, storage key lists). */
export function unpickleData(reader: BufferReader, file: string, part: string): unknown {
  const refuse = (): never => {
    throw new CheckpointError(`checkpoint ${file}: unexpected tensor data in ${part}`);
  };
  return unpickleTorch(reader, file, part, { persistentLoad: refuse, rebuildTensor: refuse });
}
