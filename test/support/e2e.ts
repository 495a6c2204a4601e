/**
 * One server per test file: `useServer()` starts the CLI before the file's tests and stops it,
 * with every receiver and temporary directory, after them.
 */
import { afterAll, beforeAll, expect } from 'vitest';
import { Receiver } from './receiver.js';
import {
  binaryEvent,
  createTrigger,
  putResource,
  startServer,
  type ServerProcess,
} from './server-process.js';
import { removeTempDirs, tempDir } from './temp-dir.js';

export interface ServerFixture {
  readonly server: ServerProcess;
  readonly url: string;
  /** Creates a broker with a new name in namespace `default`. */
  broker(): Promise<string>;
  /** A listening receiver, stopped after the file's tests. */
  receiver(): Promise<Receiver>;
  /** Creates a Ready trigger on `broker` that delivers to a new receiver. */
  subscribe(broker: string, name: string, spec?: Record<string, unknown>): Promise<Receiver>;
  /**
   * Sends a binary-mode event to `broker`, expects 202, and returns its id. Defaults fill the
   * attributes not given (a new id each time).
   */
  send(
    broker: string,
    attributes?: Record<string, string>,
    body?: string,
    contentType?: string,
  ): Promise<string>;
}

export function useServer(args: readonly string[] = []): ServerFixture {
  let server: ServerProcess | undefined;
  const receivers: Receiver[] = [];
  let brokers = 0;
  let events = 0;

  beforeAll(async () => {
    server = await startServer({ dataDir: tempDir(), args });
  });
  afterAll(async () => {
    await server?.stop();
    await Promise.all(receivers.map((r) => r.stop()));
    removeTempDirs();
  });

  const fixture: ServerFixture = {
    get server() {
      if (server === undefined) throw new Error('the server is not started yet');
      return server;
    },
    get url() {
      return fixture.server.url;
    },
    async broker() {
      const name = `b${++brokers}`;
      expect((await putResource(fixture.url, 'brokers', 'default', name, {})).status).toBe(201);
      return name;
    },
    async receiver() {
      const receiver = await new Receiver().start();
      receivers.push(receiver);
      return receiver;
    },
    async subscribe(broker, name, spec = {}) {
      const receiver = await fixture.receiver();
      await createTrigger(fixture.url, name, {
        broker,
        subscriber: { uri: receiver.url },
        ...spec,
      });
      return receiver;
    },
    async send(broker, attributes = {}, body, contentType) {
      const defaults = {
        specversion: '1.0',
        id: `e${++events}`,
        source: '/test',
        type: 'com.example.test',
      };
      const all = { ...defaults, ...attributes };
      const response = await fetch(
        `${fixture.url}/default/${broker}`,
        binaryEvent(all, body, contentType),
      );
      expect(response.status).toBe(202);
      return all.id;
    },
  };
  return fixture;
}
