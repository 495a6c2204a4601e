/**
 * Starts the real CLI (`node dist/cli.js serve`) as a child process, as a user would, and talks to
 * it over HTTP. `npm test` builds dist/ first.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI = path.join(ROOT, 'dist/cli.js');

export interface ServerProcess {
  readonly url: string;
  readonly child: ChildProcess;
  /** Everything the process wrote so far (stdout and stderr). */
  output(): string;
  /**
   * Resolves once the process has written `text` (stdout or stderr), or once everything it wrote
   * satisfies the predicate; fails after `timeoutMs`.
   */
  waitForOutput(text: string | ((output: string) => boolean), timeoutMs?: number): Promise<void>;
  /** Resolves with the exit code (or signal) once the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then wait for exit. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILL, then wait for exit. */
  kill(): Promise<void>;
}

export interface StartOptions {
  readonly dataDir: string;
  readonly args?: readonly string[];
  readonly env?: Record<string, string>;
  readonly timeoutMs?: number;
}

/** Starts `tributary serve --port 0` and resolves with its URL once it logs that it is ready. */
export async function startServer(options: StartOptions): Promise<ServerProcess> {
  if (!existsSync(CLI))
    throw new Error(`${CLI} is missing: run "npm run build" (npm test does it) first`);
  const child = spawn(
    process.execPath,
    [
      CLI,
      'serve',
      '--port',
      '0',
      '--host',
      '127.0.0.1',
      '--data-dir',
      options.dataDir,
      ...(options.args ?? []),
    ],
    { env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  const outputWaiters = new Set<{ text: (output: string) => boolean; resolve: () => void }>();
  const wakeOutputWaiters = (): void => {
    for (const w of outputWaiters) {
      if (w.text(output)) {
        outputWaiters.delete(w);
        w.resolve();
      }
    }
  };
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`the server did not get ready in time; output:\n${output}`)),
      options.timeoutMs ?? 20_000,
    );
    const onData = (chunk: Buffer): void => {
      output += chunk.toString('utf8');
      wakeOutputWaiters();
      for (const line of output.split('\n')) {
        if (!line.includes('"tributary ready"')) continue;
        clearTimeout(timer);
        resolve((JSON.parse(line) as { url: string }).url);
        return;
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8');
      wakeOutputWaiters();
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(
        new Error(`the server exited (${code ?? signal}) before it was ready; output:\n${output}`),
      );
    });
  });
  return {
    url,
    child,
    output: () => output,
    waitForOutput: (wanted, timeoutMs = 20_000) => {
      const text = typeof wanted === 'string' ? (all: string) => all.includes(wanted) : wanted;
      if (text(output)) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          outputWaiters.delete(waiter);
          reject(
            new Error(
              `the server did not write ${typeof wanted === 'string' ? `"${wanted}"` : 'what was awaited'} in ${timeoutMs} ms; output:\n${output}`,
            ),
          );
        }, timeoutMs);
        const waiter = {
          text,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        };
        outputWaiters.add(waiter);
      });
    },
    exited,
    stop: async () => {
      child.kill('SIGTERM');
      return exited;
    },
    kill: async () => {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** A CloudEvent in binary mode for fetch(). */
export function binaryEvent(
  attributes: Record<string, string>,
  body?: string,
  contentType?: string,
): { method: 'POST'; headers: Record<string, string>; body?: string } {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(attributes)) headers[`ce-${name}`] = value;
  if (contentType !== undefined) headers['content-type'] = contentType;
  return { method: 'POST', headers, ...(body === undefined ? {} : { body }) };
}

export async function putResource(
  baseUrl: string,
  collection: string,
  namespace: string,
  name: string,
  body: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${baseUrl}/v1/namespaces/${namespace}/${collection}/${name}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** Creates a trigger on `broker` delivering to `uri` and checks that it is Ready. */
export async function createTrigger(
  baseUrl: string,
  name: string,
  spec: Record<string, unknown>,
  namespace = 'default',
): Promise<Record<string, unknown>> {
  const { status, body } = await putResource(baseUrl, 'triggers', namespace, name, { spec });
  if (status !== 201 && status !== 200)
    throw new Error(`trigger ${name}: ${status} ${JSON.stringify(body)}`);
  const conditions = (body.status as { conditions: { type: string; status: string }[] }).conditions;
  if (conditions.find((c) => c.type === 'Ready')?.status !== 'True') {
    throw new Error(`trigger ${name} is not Ready: ${JSON.stringify(body.status)}`);
  }
  return body;
}

/**
 * Posts a small binary-mode JSON event with id `id` to `broker` (namespace default) and reads the
 * whole answer, which it returns.
 */
export async function postEvent(
  baseUrl: string,
  broker: string,
  id: string,
  source = '/test',
): Promise<Response> {
  const response = await fetch(
    `${baseUrl}/default/${broker}`,
    binaryEvent(
      { specversion: '1.0', id, source, type: 'com.example.test' },
      `{"id":"${id}"}`,
      'application/json',
    ),
  );
  await response.arrayBuffer();
  return response;
}
