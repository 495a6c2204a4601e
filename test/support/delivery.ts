/**
 * Helpers for the delivery-guarantee e2e tests (test/e2e/delivery-*.test.ts): arrival times
 * recorded by a receiver's responder, reading resource status and dead letters over the API, and
 * awaiting an observable condition by polling it (never a fixed sleep).
 */
import { expect } from 'vitest';
import type { Answer, Receiver, ReceivedRequest, Responder } from './receiver.js';
import { putResource } from './server-process.js';

/**
 * Makes `responder` answer the receiver's requests and records when each one arrived (the
 * receiver's own clock, `performance.now()`, when the request body has been read).
 */
export function recordArrivals(receiver: Receiver, responder: Responder): number[] {
  const arrivals: number[] = [];
  receiver.responder = (request, index) => {
    arrivals[index] = performance.now();
    return responder(request, index);
  };
  return arrivals;
}

/** Gaps between consecutive arrivals, in ms. */
export function gapsOf(arrivals: readonly number[]): number[] {
  return arrivals.slice(1).map((t, i) => t - arrivals[i]!);
}

/**
 * Each measured gap is at least 0.8 x the expected wait and at most the expected wait + 700 ms
 * (generous: the gap also holds the scheduling of the retry and the request itself).
 */
export function expectGaps(gaps: readonly number[], expected: readonly number[]): void {
  const shown = `measured gaps ${JSON.stringify(gaps.map(Math.round))}, expected ${JSON.stringify(expected)}`;
  expect(gaps.length, shown).toBe(expected.length);
  expected.forEach((e, k) => {
    expect(gaps[k], `gap ${k + 1}: ${shown}`).toBeGreaterThanOrEqual(0.8 * e);
    expect(gaps[k], `gap ${k + 1}: ${shown}`).toBeLessThanOrEqual(e + 700);
  });
}

/** A binary-mode CloudEvent as a subscriber's answer (a reply). */
export function binaryAnswer(
  attributes: Record<string, string>,
  body?: string | Buffer,
  contentType?: string,
  status = 200,
): Answer {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(attributes)) headers[`ce-${name}`] = value;
  if (contentType !== undefined) headers['content-type'] = contentType;
  return { status, headers, ...(body === undefined ? {} : { body }) };
}

export const idOf = (request: ReceivedRequest): string => String(request.headers['ce-id']);

export async function getJson(url: string): Promise<{ status: number; body: any }> {
  const response = await fetch(url);
  const text = await response.text();
  return { status: response.status, body: text === '' ? undefined : JSON.parse(text) };
}

export async function postJson(url: string, body: unknown): Promise<{ status: number; body: any }> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text === '' ? undefined : JSON.parse(text) };
}

/** The `status` of a resource in namespace `default`. */
export async function statusOf(
  baseUrl: string,
  collection: 'brokers' | 'triggers',
  name: string,
): Promise<any> {
  const { status, body } = await getJson(`${baseUrl}/v1/namespaces/default/${collection}/${name}`);
  expect(status, `GET ${collection}/${name}`).toBe(200);
  return body.status;
}

/**
 * Polls `read` every 50 ms until `holds` is true of its value, and resolves with that value;
 * fails after `timeoutMs` showing the last value. This awaits an observable condition.
 */
export async function until<T>(
  what: string,
  read: () => Promise<T>,
  holds: (value: T) => boolean,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (holds(value)) return value;
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}; last value: ${JSON.stringify(value)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** True of a resource status whose Ready condition is True. */
export function isReady(status: { conditions?: { type: string; status: string }[] }): boolean {
  return status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
}

/** Resolves with a trigger's status once `holds` is true of it. */
export function untilTriggerStatus(
  baseUrl: string,
  trigger: string,
  holds: (status: any) => boolean,
  timeoutMs?: number,
): Promise<any> {
  return until(
    `the status of trigger ${trigger}`,
    () => statusOf(baseUrl, 'triggers', trigger),
    holds,
    timeoutMs,
  );
}

/**
 * PUTs a trigger and waits until it is Ready. Its first subscription attempt can fail (a Kafka
 * partition just created with no leader known yet) or take longer than the 10 s a PUT waits for
 * (a consumer group other replicas join at the same time, under the load of the whole test run);
 * the control plane retries it, so Ready is awaited, not required of the answer.
 */
export async function createReadyTrigger(
  baseUrl: string,
  name: string,
  spec: Record<string, unknown>,
  timeoutMs = 60_000,
): Promise<void> {
  const { status } = await putResource(baseUrl, 'triggers', 'default', name, { spec });
  expect([200, 201]).toContain(status);
  await untilTriggerStatus(baseUrl, name, isReady, timeoutMs);
}

/**
 * PUTs a resource (namespace default) again while the answer is 503, as a client honouring
 * Retry-After would (e.g. right after the backend restarted), and resolves with the first other
 * answer.
 */
export function putWhileUnavailable(
  baseUrl: string,
  collection: string,
  name: string,
  body: unknown,
  timeoutMs = 60_000,
): ReturnType<typeof putResource> {
  return until(
    `${collection}/${name} stored`,
    () => putResource(baseUrl, collection, 'default', name, body),
    (answer) => answer.status !== 503,
    timeoutMs,
  );
}

/** Resolves with a broker's status once `holds` is true of it. */
export function untilBrokerStatus(
  baseUrl: string,
  broker: string,
  holds: (status: any) => boolean,
  timeoutMs?: number,
): Promise<any> {
  return until(
    `the status of broker ${broker}`,
    () => statusOf(baseUrl, 'brokers', broker),
    holds,
    timeoutMs,
  );
}

/** The dead-letter API of a trigger in namespace `default`. */
export function deadLetters(baseUrl: string, trigger: string) {
  const base = `${baseUrl}/v1/namespaces/default/triggers/${trigger}/deadletters`;
  return {
    async list(query: Record<string, string> = {}): Promise<{ status: number; body: any }> {
      const q = new URLSearchParams(query).toString();
      return getJson(q === '' ? base : `${base}?${q}`);
    },
    /** The listing once its `total` is `count`. */
    untilTotal(count: number, timeoutMs?: number): Promise<any> {
      return until(
        `${count} dead letters of trigger ${trigger}`,
        async () => (await getJson(base)).body,
        (body: any) => body?.total === count,
        timeoutMs,
      );
    },
    redrive(body: unknown): Promise<{ status: number; body: any }> {
      return postJson(`${base}/redrive`, body);
    },
  };
}
