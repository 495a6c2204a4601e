/**
 * What the pulling-source tests (Kafka, RocketMQ) share: reading a source's status and awaiting
 * its conditions, the servers and receivers a file starts (stopped after it), and a sink for the
 * kill -9 tests that tells what a living process had accepted from what reached a dead one.
 */
import { getJson, until } from './delivery.js';
import { Gate, Receiver, type ReceivedRequest } from './receiver.js';
import { startServer, type ServerProcess } from './server-process.js';

/** The status of source `name` in namespace `default`. */
export async function sourceStatus(baseUrl: string, name: string): Promise<any> {
  return (await getJson(`${baseUrl}/v1/namespaces/default/sources/${name}`)).body?.status;
}

/** The condition `type` of a status, if it has one. */
export function condition(status: any, type: string): any {
  return status?.conditions?.find((c: { type: string }) => c.type === type);
}

/** Resolves with the source's status once its condition `type` is `wanted` (and has `reason`). */
export function untilSourceCondition(
  baseUrl: string,
  name: string,
  type: string,
  wanted: 'True' | 'False' | 'Unknown',
  reason?: string,
  timeoutMs = 45_000,
): Promise<any> {
  return until(
    `${name}'s ${type} condition to be ${wanted}${reason === undefined ? '' : ` (${reason})`}`,
    () => sourceStatus(baseUrl, name),
    (status) =>
      condition(status, type)?.status === wanted &&
      (reason === undefined || condition(status, type)?.reason === reason),
    timeoutMs,
  );
}

/** Resolves once the source's consumer has joined its upstream on that server. */
export function untilConnected(baseUrl: string, name: string, timeoutMs = 60_000): Promise<any> {
  return untilSourceCondition(baseUrl, name, 'Connected', 'True', undefined, timeoutMs);
}

/** Servers and receivers of one test file, all stopped by `stopAll` (in its afterAll). */
export function processes() {
  const servers: ServerProcess[] = [];
  const receivers: Receiver[] = [];
  return {
    server: async (dataDir: string, args: readonly string[] = []): Promise<ServerProcess> => {
      const started = await startServer({ dataDir, args: ['--shutdown-timeout', '2s', ...args] });
      servers.push(started);
      return started;
    },
    receiver: async (): Promise<Receiver> => {
      const r = await new Receiver().start();
      receivers.push(r);
      return r;
    },
    stopAll: async (): Promise<void> => {
      await Promise.all(servers.map((s) => s.stop()));
      await Promise.all(receivers.map((r) => r.stop()));
    },
  };
}

/**
 * A sink for the kill -9 tests: it refuses (503) until `refusing` is set false, then accepts
 * `holdAfter` events and holds the next ones unanswered until `killed()` is called; those held
 * requests then get a 200 that reaches nobody. `accepted` holds the bodies a living process got a
 * 200 for (`bodyOf` names them), which is what must end up complete after the restart.
 */
export function crashSink(
  receiver: Receiver,
  holdAfter: number,
  bodyOf: (request: ReceivedRequest) => string,
) {
  const hold = new Gate();
  let dead = false;
  const sink = {
    refusing: true,
    accepted: new Set<string>(),
    /** How many were accepted when the process was killed. */
    acceptedAtKill: 0,
    killed(): void {
      dead = true;
      sink.acceptedAtKill = sink.accepted.size;
      hold.open();
    },
  };
  receiver.responder = async (request) => {
    if (sink.refusing) return { status: 503 };
    if (sink.accepted.size >= holdAfter && !dead) {
      await hold.opened;
      return { status: 200 };
    }
    sink.accepted.add(bodyOf(request));
    return { status: 200 };
  };
  return sink;
}

/** Resolves once `sink` accepted every one of `bodies`. */
export function untilAccepted(
  sink: { readonly accepted: ReadonlySet<string> },
  bodies: readonly string[],
  timeoutMs = 90_000,
): Promise<number> {
  return until(
    `all ${bodies.length} accepted`,
    async () => bodies.filter((b) => sink.accepted.has(b)).length,
    (n) => n === bodies.length,
    timeoutMs,
  );
}

/** `n` distinct payloads: `<name>-0000`, `<name>-0001`, ... */
export function numbered(name: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => `${name}-${String(i).padStart(4, '0')}`);
}

/** The payloads (read by `payloadOf`) that reached `receiver`, and how many came more than once. */
export function arrivals(
  receiver: Receiver,
  payloadOf: (request: ReceivedRequest) => string,
): { unique: Set<string>; duplicates: number } {
  const payloads = receiver.requests.map(payloadOf);
  const unique = new Set(payloads);
  return { unique, duplicates: payloads.length - unique.size };
}

/** Resolves once every one of `payloads` reached `receiver`. */
export function untilArrived(
  receiver: Receiver,
  payloads: readonly string[],
  payloadOf: (request: ReceivedRequest) => string,
  timeoutMs = 90_000,
): Promise<number> {
  return until(
    `all ${payloads.length} at the receiver`,
    async () => {
      const { unique } = arrivals(receiver, payloadOf);
      return payloads.filter((p) => unique.has(p)).length;
    },
    (n) => n === payloads.length,
    timeoutMs,
  );
}
