/** The pre-training study report states the weights of every model it compares (issue 10). */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { studyJson, studyWeights } from '../../src/pretrain/study/report';
import type { StudyResult } from '../../src/pretrain/study/types';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'irlens-study-weights-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('study report weights provenance', () => {
  it('lists each run model with file, sha256 and who trained it; JSON carries them with the run provenance', () => {
    fs.mkdirSync(path.join(dir, 'seed-0', 'scratch-sr-x2'), { recursive: true });
    const bytes = Buffer.from('not really a model');
    fs.writeFileSync(path.join(dir, 'seed-0', 'scratch-sr-x2', 'model.safetensors'), bytes);
    const r = {
      runDir: dir,
      runs: [
        { id: 'seed-0/scratch-sr-x2', kind: 'scratch', tasks: ['sr-x2'], trainSeed: 0 },
        { id: 'seed-0/finetune-single-sr-x2', kind: 'finetune', from: 'seed-0/pretrain-single', tasks: ['sr-x2'], trainSeed: 1 },
      ],
      provenance: { command: 'irlens pretrain study --arch edt', versions: { irlens: '0.1.0' } },
    } as unknown as StudyResult;
    const w = studyWeights(r);
    expect(w[0].weights).toMatchObject({ source: 'irlens-trained', sha256: createHash('sha256').update(bytes).digest('hex') });
    expect(w[0].weights.file).toBe(path.join(dir, 'seed-0', 'scratch-sr-x2', 'model.safetensors'));
    expect(w[0].weights.trainedBy).toMatch(/seeded random init \(seed 0\)/);
    expect(w[1].weights.sha256).toBeNull(); // not on disk
    expect(w[1].weights.trainedBy).toMatch(/fine-tuned from run seed-0\/pretrain-single/);
    const j = JSON.parse(studyJson(r));
    expect(j.provenance.weights).toEqual(JSON.parse(JSON.stringify(w)));
    expect(j.provenance.run.command).toBe('irlens pretrain study --arch edt');
    expect(j.provenance.run).toHaveProperty('gitCommit');
    expect(j.provenance.run.compute.description).toEqual(expect.any(String));
  });
});
