/** One-line errors that name the option or input they concern. */

/** The first line of an error's message. */
export function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0];
}

/** `label: message` from an error, unless the message already starts with `label`; `strip` removes a prefix first. */
export function prefixed(label: string, e: unknown, strip?: RegExp): Error {
  const msg = firstLine(e);
  return new Error(msg.startsWith(label) ? msg : `${label}: ${strip ? msg.replace(strip, '') : msg}`);
}

/** Runs `fn`, rethrowing its error as a one-line error prefixed with `label` (see prefixed). */
export function naming<T>(label: string, fn: () => T, strip?: RegExp): T {
  try {
    return fn();
  } catch (e) {
    throw prefixed(label, e, strip);
  }
}

/** Async form of naming. */
export async function namingAsync<T>(label: string, fn: () => Promise<T>, strip?: RegExp): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw prefixed(label, e, strip);
  }
}

/**
 * The message a user should see for an error. The wasm backend's heap is limited to 4 GB; when a request outgrows
 * it, emscripten aborts with "Aborted()" or a RangeError "memory access out of bounds" that says nothing useful.
 */
export function userMessage(e: unknown): string {
  const msg = firstLine(e);
  if (/^(RuntimeError: )?(Aborted\(|memory access out of bounds)/.test(msg) || msg === 'Out of memory')
    return `the wasm backend ran out of memory (its heap holds at most 4 GB; ${msg.replace(/ Build with -sASSERTIONS.*$/, '')}): use a smaller --size/--patch, --batch or model`;
  return msg;
}
