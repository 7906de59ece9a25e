import { describe, expect, it } from 'vitest';
import { userMessage } from '../../src/util/errors';

describe('userMessage', () => {
  it('turns emscripten heap aborts into an out-of-memory message that says what to change', () => {
    for (const e of [new Error('Aborted(). Build with -sASSERTIONS for more info.'), new RangeError('memory access out of bounds')]) {
      const m = userMessage(e);
      expect(m).toMatch(/^the wasm backend ran out of memory \(its heap holds at most 4 GB; .*\): use a smaller --size\/--patch, --batch or model$/);
      expect(m).not.toMatch(/ASSERTIONS/);
    }
  });
  it('keeps other messages, first line only', () => {
    expect(userMessage(new Error('--size: expected HxW\nstack'))).toBe('--size: expected HxW');
  });
});
