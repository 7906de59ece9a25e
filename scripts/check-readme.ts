/**
 * Runs the README's code blocks that are marked to run, exactly as written, and exits non-zero when one fails.
 *
 * A block runs when the line before its opening fence is an HTML comment (invisible on GitHub):
 *
 *   <!-- check-readme: run -->                          the whole block
 *   <!-- check-readme: run skip="^jupyter notebook" --> every line except those matching the regex
 *   <!-- check-readme: run timeout=900 -->              seconds (default 600)
 *
 * ```bash / ```sh blocks run line by line in one `bash -e` from the repository root (a comment after a command
 * is part of it, as in a shell). ```ts blocks are written to a file inside the repository (runs/, ignored by
 * git), so `import ... from 'irlens'` resolves to this checkout through package.json "exports" (Node's package
 * self-reference; dist/ is built by `npm install`), and run with tsx.
 *
 *   npx tsx scripts/check-readme.ts [README.md] [--list]
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

interface Block {
  line: number;
  lang: string;
  code: string;
  skip?: RegExp;
  timeout: number;
}

const ROOT = path.resolve(__dirname, '..');

/** Marked fenced blocks of a Markdown text (hand-written: one marker form and plain ``` fences, no Markdown parser needed). */
export function markedBlocks(markdown: string, file = 'README.md'): Block[] {
  const lines = markdown.split('\n');
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const marker = /^<!--\s*check-readme:\s*run\b(.*?)-->\s*$/.exec(lines[i]);
    if (!marker) continue;
    const fence = /^```(\w+)/.exec(lines[i + 1] ?? '');
    if (!fence) throw new Error(`${file}:${i + 1}: check-readme marker not directly followed by a fenced code block`);
    const end = lines.findIndex((l, j) => j > i + 1 && /^```\s*$/.test(l));
    if (end < 0) throw new Error(`${file}:${i + 2}: code block never closed`);
    const attrs = marker[1];
    const skip = /skip="([^"]*)"/.exec(attrs)?.[1];
    const timeout = Number(/timeout=(\d+)/.exec(attrs)?.[1] ?? 600);
    if (!['bash', 'sh', 'ts', 'typescript'].includes(fence[1])) throw new Error(`${file}:${i + 2}: cannot run a '${fence[1]}' block (bash, sh or ts)`);
    blocks.push({ line: i + 2, lang: fence[1], code: lines.slice(i + 2, end).join('\n'), skip: skip === undefined ? undefined : new RegExp(skip), timeout });
    i = end;
  }
  return blocks;
}

function runBash(b: Block): number {
  const lines = b.code.split('\n').filter((l) => l.trim() !== '');
  const kept = lines.filter((l) => !b.skip?.test(l));
  for (const l of lines) if (!kept.includes(l)) process.stdout.write(`  (skipped) ${l}\n`);
  // `set -x`-like echo of each command before it runs, so a CI log shows which README line failed.
  const script = ['set -eo pipefail', ...kept.map((l) => `printf '%s\\n' ${shellQuote(`$ ${l}`)}\n${l}`)].join('\n');
  return spawnSync('bash', ['-c', script], { cwd: ROOT, stdio: 'inherit', timeout: b.timeout * 1000 }).status ?? 1;
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function runTs(b: Block, index: number): number {
  const dir = path.join(ROOT, 'runs', '.check-readme');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `block-${index}-line-${b.line}.ts`);
  fs.writeFileSync(file, `${b.code}\n`);
  try {
    const tsx = path.join(ROOT, 'node_modules', '.bin', 'tsx');
    return spawnSync(tsx, [file], { cwd: ROOT, stdio: 'inherit', timeout: b.timeout * 1000 }).status ?? 1;
  } finally {
    fs.rmSync(file, { force: true });
  }
}

function main(argv: string[]): number {
  const list = argv.includes('--list');
  const readme = path.resolve(argv.find((a) => !a.startsWith('--')) ?? path.join(ROOT, 'README.md'));
  if (!fs.existsSync(readme)) throw new Error(`check-readme: '${readme}' does not exist`);
  const blocks = markedBlocks(fs.readFileSync(readme, 'utf8'), path.relative(ROOT, readme));
  if (blocks.length === 0) throw new Error(`check-readme: ${path.relative(ROOT, readme)} has no <!-- check-readme: run --> block`);
  const failed: string[] = [];
  blocks.forEach((b, i) => {
    process.stdout.write(`== check-readme: ${path.basename(readme)}:${b.line} (${b.lang})\n`);
    if (list) return void process.stdout.write(`${b.code}\n`);
    const t0 = Date.now();
    const status = b.lang === 'ts' || b.lang === 'typescript' ? runTs(b, i) : runBash(b);
    process.stdout.write(`== ${status === 0 ? 'ok' : `FAILED (exit ${status})`} in ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
    if (status !== 0) failed.push(`${path.basename(readme)}:${b.line}`);
  });
  if (failed.length) process.stderr.write(`check-readme: ${failed.length} of ${blocks.length} block(s) failed: ${failed.join(', ')}\n`);
  else process.stdout.write(`check-readme: all ${blocks.length} marked block(s) ran\n`);
  return failed.length ? 1 : 0;
}

if (require.main === module) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    process.exitCode = 1;
  }
}
