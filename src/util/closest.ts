/**
 * "Did you mean" for one-line errors: the names closest to a mistyped one by edit distance
 * (fastest-levenshtein), best first.
 */
import { distance } from 'fastest-levenshtein';

export function closestNames(name: string, names: Iterable<string>, k = 5): string[] {
  return [...names]
    .map((n) => [n, distance(name, n)] as const)
    .sort((a, b) => a[1] - b[1])
    .slice(0, k)
    .map(([n]) => n);
}
