/**
 * The KafkaSource's Committer: one commit in flight per partition, the next taking what was
 * delivered meanwhile; flush resolves once everything requested is committed (or failed), also
 * when a request brings nothing new (a regression: that case once left flush spinning forever).
 */
import { describe, expect, it } from 'vitest';
import { Committer } from '../../src/adapters/kafka/index.js';
import { deferred } from '../support/deferred.js';

describe('Committer', () => {
  it('commits one at a time, the next one taking the latest request', async () => {
    const commits: string[] = [];
    const gates: ReturnType<typeof deferred<boolean>>[] = [];
    const committer = new Committer((last) => {
      commits.push(last);
      const gate = deferred<boolean>();
      gates.push(gate);
      return gate.promise;
    });
    committer.request('1');
    committer.request('2');
    committer.request('3');
    expect(commits).toEqual(['1']);
    gates[0]!.resolve(true);
    await new Promise((resolve) => setImmediate(resolve));
    expect(commits).toEqual(['1', '3']);
    gates[1]!.resolve(true);
    await committer.flush('3');
    expect(commits).toEqual(['1', '3']);
  });

  it('flush resolves when the request brings nothing new, and when idle again afterwards', async () => {
    const commits: string[] = [];
    const committer = new Committer(async (last) => {
      commits.push(last);
      return true;
    });
    await committer.flush('5');
    committer.request('5');
    await committer.flush('5');
    await committer.flush(undefined);
    expect(commits).toEqual(['5']);
    // Still alive: a later offset is committed.
    await committer.flush('6');
    expect(commits).toEqual(['5', '6']);
  });

  it('stops after a failed commit; a later request tries again', async () => {
    const results = [false, true];
    const commits: string[] = [];
    const committer = new Committer(async (last) => {
      commits.push(last);
      return results.shift() ?? true;
    });
    await committer.flush('7');
    expect(commits).toEqual(['7']);
    await committer.flush('7');
    expect(commits).toEqual(['7', '7']);
  });
});
