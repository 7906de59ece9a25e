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
