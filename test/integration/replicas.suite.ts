/**
 * Several `tributary serve` processes on one shared backend (issues 6 and 7, "Replicas"): they
 * share each trigger's deliveries without duplicates, a change through one takes effect in the
 * other, and after `kill -9` of one under load every acknowledged event is still delivered. Run
 * by nats-replicas.test.ts and kafka-replicas.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createReadyTrigger, until } from '../support/delivery.js';
import { Receiver } from '../support/receiver.js';
import {
  postEvent,
  putResource,
  startServer,
  type ServerProcess,
} from '../support/server-process.js';
import { removeTempDirs, tempDir } from '../support/temp-dir.js';

export interface ReplicaBackend {
  readonly name: string;
  readonly available: boolean;
  /** The serve flags of a replica on the backend (same data for every replica). */
  readonly args: readonly string[];
  /** Removes what the replicas created in the backend. */
  cleanup(): Promise<void>;
  /**
   * How many deliveries may come twice after the kill: what was out (and not yet committed) in the
   * replicas whose work moves. Each replica has at most 8 out (--trigger-concurrency 8).
   */
  readonly maxDuplicates: number;
}

export function replicaTests(backend: ReplicaBackend): void {
  // Consumer groups may take a while to settle under the load of the whole run.
  describe.runIf(backend.available)(
    `${backend.name} backend: replicas`,
    { timeout: 120_000 },
    () => {
      const servers: ServerProcess[] = [];
      const receivers: Receiver[] = [];

      async function replica(): Promise<ServerProcess> {
        const server = await startServer({
          dataDir: tempDir(),
          args: [...backend.args, '--trigger-concurrency', '8', '--shutdown-timeout', '2s'],
        });
        servers.push(server);
        return server;
      }

      async function receiver(): Promise<Receiver> {
        const r = await new Receiver().start();
        receivers.push(r);
        return r;
      }

      let a: ServerProcess;
      let b: ServerProcess;

      beforeAll(async () => {
        [a, b] = await Promise.all([replica(), replica()]);
      });

      afterAll(async () => {
        await Promise.all(servers.map((s) => s.stop()));
        await Promise.all(receivers.map((r) => r.stop()));
        await backend.cleanup();
        removeTempDirs();
      });

      async function send(server: ServerProcess, broker: string, id: string): Promise<number> {
        return (await postEvent(server.url, broker, id, '/replicas')).status;
      }

      async function deliveredBy(server: ServerProcess, trigger: string): Promise<number> {
        const response = await fetch(`${server.url}/v1/namespaces/default/triggers/${trigger}`);
        const body = (await response.json()) as { status: { deliveries?: { delivered: number } } };
        return body.status.deliveries?.delivered ?? 0;
      }

      /** Revisions of the trigger that `server` logged as applied. */
      function revisions(output: string, trigger: string): number[] {
        const pattern = new RegExp(
          `"trigger":"default/${trigger}","revision":(\\d+),"msg":"trigger applied"`,
          'g',
        );
        return [...output.matchAll(pattern)].map((m) => Number(m[1]));
      }

      /**
       * Resolves once `to` has applied the trigger as `from` has it now (the replica a change went
       * through has applied it before answering, though its log line may still be on the way).
       */
      async function followed(
        from: ServerProcess,
        to: ServerProcess,
        trigger: string,
      ): Promise<void> {
        // The change's answer can come before its log line has crossed `from`'s stdout pipe.
        await from.waitForOutput((output) => revisions(output, trigger).length > 0);
        const revision = Math.max(...revisions(from.output(), trigger));
        expect(revision).toBeGreaterThan(0);
        const started = Date.now();
        await to.waitForOutput((output) => revisions(output, trigger).some((r) => r >= revision));
        console.log(
          `${trigger}: revision ${revision} applied by the other replica after ${Date.now() - started} ms`,
        );
      }

      it('share a trigger: each event delivered once, by both replicas together', async () => {
        const r = await receiver();
        expect(
          (await putResource(a.url, 'brokers', 'default', 'shared', { spec: {} })).status,
        ).toBe(201);
        await createReadyTrigger(a.url, 'shared-t', {
          broker: 'shared',
          subscriber: { uri: r.url },
        });
        await followed(a, b, 'shared-t');

        const ids = Array.from({ length: 200 }, (_, i) => `shared-${i}`);
        const statuses = await Promise.all(
          ids.map((id, i) => send(i % 2 === 0 ? a : b, 'shared', id)),
        );
        expect(statuses.every((s) => s === 202)).toBe(true);
        await r.waitFor(ids.length);
        // A marker after everything: once it is in, nothing else is on its way.
        await send(a, 'shared', 'marker');
        await r.waitFor(ids.length + 1);
        const received = r.requests.map((q) => String(q.headers['ce-id']));
        expect(received.length).toBe(ids.length + 1);
        expect(new Set(received).size).toBe(received.length);
        // The counters move once a delivery is settled, just after the subscriber has it.
        const both = async (): Promise<[number, number]> =>
          Promise.all([deliveredBy(a, 'shared-t'), deliveredBy(b, 'shared-t')]);
        const [byA, byB] = await until(
          'the deliveries counted by both replicas',
          both,
          ([x, y]) => x + y >= ids.length + 1,
        );
        console.log(`deliveries: replica A ${byA}, replica B ${byB}`);
        expect(byA + byB).toBe(ids.length + 1);
        expect(byA).toBeGreaterThan(0);
        expect(byB).toBeGreaterThan(0);
      });

      it('apply a change made through the other replica without a restart', async () => {
        const first = await receiver();
        const second = await receiver();
        await putResource(b.url, 'brokers', 'default', 'changing', { spec: {} });
        await createReadyTrigger(b.url, 'changing-t', {
          broker: 'changing',
          subscriber: { uri: first.url },
        });
        // Through B: the subscriber moves to `second`; A must follow.
        const { status } = await putResource(b.url, 'triggers', 'default', 'changing-t', {
          spec: { broker: 'changing', subscriber: { uri: second.url } },
        });
        expect(status).toBe(200);
        await followed(b, a, 'changing-t');
        // Only A is left to deliver: what it sends must go to the new subscriber.
        const stopped = b;
        await stopped.stop();
        servers.splice(servers.indexOf(stopped), 1);
        expect(await send(a, 'changing', 'after-change')).toBe(202);
        const [request] = await second.waitFor(1);
        expect(request!.headers['ce-id']).toBe('after-change');
        expect(first.requests.map((q) => q.headers['ce-id'])).not.toContain('after-change');
        b = await replica();
      });

      it('deliver every acknowledged event after kill -9 of one replica under load', async () => {
        const r = await receiver();
        // A slow subscriber keeps deliveries in flight in both replicas when the kill comes.
        r.responder = () =>
          new Promise((resolve) => setTimeout(() => resolve({ status: 200 }), 20));
        await putResource(a.url, 'brokers', 'default', 'crash', { spec: {} });
        await createReadyTrigger(a.url, 'crash-t', {
          broker: 'crash',
          subscriber: { uri: r.url },
          delivery: { retry: 100, backoffPolicy: 'linear', backoffDelay: 'PT0.05S' },
        });
        await followed(a, b, 'crash-t');

        const acknowledged = new Set<string>();
        let sent = 0;
        const load = async (server: ServerProcess, name: string, count: number): Promise<void> => {
          for (let i = 0; i < count; i++) {
            const id = `${name}-${i}`;
            sent++;
            const status = await send(server, 'crash', id).catch(() => 0);
            if (status === 202) acknowledged.add(id);
          }
        };
        const victim = a;
        const survivorLoad = Promise.all([load(b, 'b0', 150), load(b, 'b1', 150)]);
        const victimLoad = Promise.all([load(victim, 'a0', 150), load(victim, 'a1', 150)]);
        // Kill A once the subscriber is busy with deliveries from both.
        await r.waitFor(100, 30_000);
        await victim.kill();
        servers.splice(servers.indexOf(victim), 1);
        await Promise.all([victimLoad, survivorLoad]);

        // Events whose 202 the kill cut off may arrive too: wait for every acknowledged one.
        const ids = (): Set<string> => new Set(r.requests.map((q) => String(q.headers['ce-id'])));
        while ([...acknowledged].some((id) => !ids().has(id))) {
          await r.waitFor(r.requests.length + 1, 60_000);
        }
        const received = r.requests.map((q) => String(q.headers['ce-id']));
        const unique = new Set(received);
        const missing = [...acknowledged].filter((id) => !unique.has(id));
        console.log(
          `kill -9 under load: sent ${sent}, acknowledged ${acknowledged.size}, ` +
            `delivered ${unique.size}, duplicates ${received.length - unique.size}`,
        );
        expect(missing).toEqual([]);
        expect(received.length - unique.size).toBeLessThanOrEqual(backend.maxDuplicates);
        a = await replica();
      });
    },
  );
}
