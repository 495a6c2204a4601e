/**
 * A slow subscriber's backlog stays in the backend, not in the server's memory (issue 12: resident
 * memory bounded while a million events wait). Run by backlog-memory-{embedded,nats,kafka}.test.ts.
 *
 * The real `tributary serve` gets one broker and one trigger whose subscriber answers each request
 * only after SLOW_ANSWER_MS, so it takes a few hundred events a second while a million arrive as
 * fast as the ingress takes them (batch mode, BATCH_SIZE events per request, SENDERS requests in
 * flight). The server's resident memory (VmRSS) is read once EARLY_AT events are stored, sampled
 * for its peak while sending, and read again at the end, with the million stored. The backend must
 * hold what waits: the trigger's backlog (GET /metrics) is at least what the subscriber has not
 * seen, and the end RSS exceeds the early one by far less than the events waiting would take.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { until } from '../support/delivery.js';
import { residentBytes, watchResident } from '../support/hostile.js';
import { Receiver } from '../support/receiver.js';
import {
  createTrigger,
  putResource,
  startServer,
  type ServerProcess,
} from '../support/server-process.js';
import { removeTempDirs, tempDir } from '../support/temp-dir.js';

const EVENTS = 1_000_000;
const BATCH_SIZE = 1_000;
const SENDERS = 4;
/** When the early RSS is read: the server has stored and dispatched for a while by then. */
const EARLY_AT = 50_000;
/** How long the subscriber holds each request before it answers 200. */
const SLOW_ANSWER_MS = 100;
/**
 * Bytes of each event's data (JSON); an event is about 1.7 KB as sent, so a million are about
 * 1.6 GB. They are this large so that the bounds below stand well above V8's lazy collection.
 */
const DATA_BYTES = 1_536;

const MiB = 1024 * 1024;

/**
 * The bounds on RSS growth from the early reading to the end reading (a million stored).
 *
 * No GC is forced (the server exposes none), and V8 collects lazily: between two major
 * collections its heap fills with garbage of the requests handled (1,000-event bodies, decoded
 * events, backend client buffers). Measured on this machine (2 cores, explored with a preloaded
 * probe that forced a GC): the live heap stays at 55-75 MB from the first 50,000 events to the
 * million on every backend, while RSS swings between about 190 MB right after a full collection
 * and 440 MB before one. Each reading lands anywhere in that swing, so the end-minus-early growth
 * measured from -15 to +91 MB, and could be as much as the whole swing, about 250 MB.
 *
 * - GROWTH_LIMIT: that swing plus a quarter, 320 MB.
 * - Relative: below a quarter of the bytes of the events waiting (about 400 MB for the million
 *   minus what the subscriber took). A server keeping the waiting events in memory would grow by
 *   more than all of them: a decoded CloudEvent takes more room than its JSON text. Keeping only
 *   some 330 bytes per waiting event would already break GROWTH_LIMIT.
 */
const GROWTH_LIMIT = 320 * MiB;

export interface BacklogBackend {
  /** Shown in the test name and the printed line. */
  readonly name: string;
  /** False: the runner skips (under CI=true the runner's check has thrown already). */
  readonly available: boolean;
  /** Starts what the backend needs and returns the server's backend flags. */
  start(): Promise<readonly string[]>;
  /** Removes what start() created and what the run stored (servers, streams, topics, groups). */
  cleanup(): Promise<void>;
  /** The test's time limit in ms. */
  readonly timeoutMs: number;
}

const PAD = 'x'.repeat(DATA_BYTES - '{"n":"0000000","pad":""}'.length);

/** The JSON of event `n`, the same size for every n. */
function eventJson(n: number): string {
  const id = String(n).padStart(7, '0');
  return (
    `{"specversion":"1.0","id":"backlog-${id}","source":"/backlog","type":"com.example.backlog",` +
    `"datacontenttype":"application/json","data":{"n":"${id}","pad":"${PAD}"}}`
  );
}

/** The value of `tributary_trigger_backlog` for `trigger`, or undefined when the scrape has none. */
async function backlogOf(url: string, trigger: string): Promise<number | undefined> {
  const response = await fetch(`${url}/metrics`);
  const text = await response.text();
  expect(response.status, text.slice(0, 500)).toBe(200);
  for (const line of text.split('\n')) {
    if (!line.startsWith('tributary_trigger_backlog{')) continue;
    if (!line.includes(`trigger_name="${trigger}"`)) continue;
    return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

const mb = (bytes: number): string => (bytes / MiB).toFixed(0);

export function backlogMemorySuite(backend: BacklogBackend): void {
  describe.runIf(backend.available)(`${backend.name} backend: a million waiting events`, () => {
    let server: ServerProcess | undefined;
    let receiver: Receiver | undefined;
    let answerAtOnce = false;

    afterAll(async () => {
      // The subscriber answers at once from now on, so that the server stops promptly.
      answerAtOnce = true;
      await server?.stop();
      await receiver?.stop();
      await backend.cleanup();
      removeTempDirs();
    }, 120_000);

    it(
      `keeps ${EVENTS.toLocaleString('en')} events for a slow subscriber in the backend, with bounded memory`,
      { timeout: backend.timeoutMs },
      async () => {
        const backendArgs = await backend.start();
        receiver = await new Receiver().start();
        receiver.responder = () =>
          answerAtOnce
            ? { status: 200 }
            : new Promise((resolve) => setTimeout(() => resolve({ status: 200 }), SLOW_ANSWER_MS));
        server = await startServer({
          dataDir: tempDir(),
          // A batch of 1,000 events of 1.7 KB is 1.7 MB: over the 1 MiB default request limit.
          args: [...backendArgs, '--max-event-size', '4MiB'],
        });
        const { url } = server;
        const pid = server.child.pid!;
        expect((await putResource(url, 'brokers', 'default', 'backlog', { spec: {} })).status).toBe(
          201,
        );
        await createTrigger(url, 'backlog-t', {
          broker: 'backlog',
          subscriber: { uri: receiver.url },
          delivery: { retry: 100, backoffPolicy: 'linear', backoffDelay: 'PT1S' },
        });

        const eventBytes = Buffer.byteLength(eventJson(0));
        const peak = watchResident(pid, 100);
        let early: number | undefined;
        let next = 0;
        let stored = 0;
        const statuses = new Map<number, number>();
        const started = performance.now();
        const sender = async (): Promise<void> => {
          while (next < EVENTS) {
            const first = next;
            next += BATCH_SIZE;
            const parts: string[] = [];
            for (let n = first; n < first + BATCH_SIZE; n++) parts.push(eventJson(n));
            const response = await fetch(`${url}/default/backlog`, {
              method: 'POST',
              headers: { 'content-type': 'application/cloudevents-batch+json' },
              body: `[${parts.join(',')}]`,
            });
            const text = await response.text();
            statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
            if (response.status !== 202) {
              next = EVENTS; // the other senders stop too
              throw new Error(`batch from ${first}: ${response.status} ${text.slice(0, 500)}`);
            }
            stored += BATCH_SIZE;
            if (early === undefined && stored >= EARLY_AT) early = residentBytes(pid);
          }
        };
        try {
          await Promise.all(Array.from({ length: SENDERS }, sender));
        } finally {
          peak.stop();
        }
        const seconds = (performance.now() - started) / 1000;
        expect([...statuses]).toEqual([[202, EVENTS / BATCH_SIZE]]);

        // A scrape leaves the trigger out when the backend is slow to tell: await one that has it.
        const backlog = (await until(
          'the trigger backlog in /metrics',
          () => backlogOf(url, 'backlog-t'),
          (value) => value !== undefined,
          30_000,
        ))!;
        // Read after the scrape: the subscriber has seen at least what was settled at the scrape.
        const seen = receiver.requests.length;
        const end = residentBytes(pid);
        const growth = end - early!;
        const waitingBytes = (EVENTS - seen) * eventBytes;
        console.log(
          `backlog memory (${backend.name}): ${EVENTS} events of ${eventBytes} B in ` +
            `${seconds.toFixed(1)} s; RSS early ${mb(early!)} MB, peak ${mb(peak.peak)} MB, ` +
            `end ${mb(end)} MB (growth ${mb(growth)} MB); backlog ${backlog}; ` +
            `subscriber saw ${seen}`,
        );

        expect(backlog).toBeGreaterThanOrEqual(EVENTS - seen);
        expect(seen, 'the subscriber is slow: most events wait').toBeLessThan(EVENTS / 10);
        expect(growth, `RSS growth, with ${mb(waitingBytes)} MB of events waiting`).toBeLessThan(
          waitingBytes / 4,
        );
        expect(growth, 'RSS growth').toBeLessThan(GROWTH_LIMIT);
      },
    );
  });
}
