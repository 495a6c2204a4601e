/** The `tributary` command: help, options from flags, environment and file, and graceful shutdown. */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { OPTIONS, envName } from '../../src/config.js';
import { Gate, Receiver } from '../support/receiver.js';
import { binaryEvent, CLI, createTrigger, startServer } from '../support/server-process.js';
import { removeTempDirs, tempDir } from '../support/temp-dir.js';

const run = promisify(execFile);

async function cli(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], {
      env: { ...process.env, ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('tributary CLI', () => {
  afterAll(removeTempDirs);

  it('explains every option and its environment variable in --help', async () => {
    const { code, stdout } = await cli(['--help']);
    expect(code).toBe(0);
    for (const option of OPTIONS) {
      expect(stdout).toContain(`--${option.flag}`);
      expect(stdout).toContain(envName(option.flag));
    }
    expect(stdout).toContain('--config');
    expect((await cli(['serve', '--help'])).stdout).toBe(stdout);
  });

  it('refuses unknown options and invalid values with a clear message and exit code 2', async () => {
    const unknown = await cli(['serve', '--colour', 'blue']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/colour/);
    const invalid = await cli(['serve', '--port', 'eighty']);
    expect(invalid.code).toBe(2);
    expect(invalid.stderr).toContain('--port');
    const badEnv = await cli(['serve'], { TRIBUTARY_BACKEND: 'postgres' });
    expect(badEnv.code).toBe(2);
    expect(badEnv.stderr).toContain('TRIBUTARY_BACKEND');
    const unknownCommand = await cli(['launch']);
    expect(unknownCommand.code).toBe(2);
  });

  it('takes a boolean option alone or with a value, and checks options that go together', async () => {
    // --nats-tls alone means true; the run then stops at the missing password, before any I/O.
    for (const args of [['--nats-tls'], ['--nats-tls', 'yes'], ['--nats-tls=false']]) {
      const { code, stderr } = await cli(['serve', ...args, '--nats-user', 'alice']);
      expect(code).toBe(2);
      expect(stderr).toContain('--nats-user: a NATS user needs a password');
      expect(stderr).not.toContain('--nats-tls');
    }
    const bad = await cli(['serve', '--nats-tls', 'maybe']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--nats-tls: "maybe" is not true or false');
    const twice = await cli(['serve', '--backend', 'nats'], {
      TRIBUTARY_NATS_TOKEN: 't',
      TRIBUTARY_NATS_CREDS_FILE: 'u.creds',
    });
    expect(twice.code).toBe(2);
    expect(twice.stderr).toContain('TRIBUTARY_NATS_TOKEN, TRIBUTARY_NATS_CREDS_FILE');
  });

  it('takes options from a YAML file, the environment and flags, flags first', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'tributary.yaml');
    writeFileSync(
      file,
      `maxEventSize: 2KiB\nlogLevel: info\ndataDir: ${path.join(dir, 'from-file')}\n`,
    );
    const server = await startServer({
      dataDir: path.join(dir, 'from-flag'),
      args: ['--config', file],
      env: { TRIBUTARY_MAX_EVENT_SIZE: '3KiB' },
    });
    try {
      const send = (size: number): Promise<Response> =>
        fetch(
          `${server.url}/default/default`,
          binaryEvent(
            { specversion: '1.0', id: 'x', source: '/s', type: 't' },
            'x'.repeat(size),
            'text/plain',
          ),
        );
      // The environment (3KiB) wins over the file (2KiB).
      expect((await send(2500)).status).toBe(202);
      expect((await send(3500)).status).toBe(413);
      // The flag's data dir wins over the file's.
      expect(server.output()).toContain('from-flag');
    } finally {
      await server.stop();
    }
  });

  it('refuses a second server on the same data dir', async () => {
    const dir = tempDir();
    const first = await startServer({ dataDir: dir });
    try {
      const second = await cli(['serve', '--port', '0', '--data-dir', dir]);
      expect(second.code).not.toBe(0);
      expect(second.stderr + second.stdout).toMatch(/in use/);
    } finally {
      await first.stop();
    }
  });

  it('on SIGTERM stops accepting, finishes the delivery in flight, and exits 0', async () => {
    const dir = tempDir();
    const receiver = await new Receiver().start();
    const gate = new Gate();
    receiver.responder = async (_req, i) => {
      if (i === 0) await gate.opened;
      return { status: 200 };
    };
    let server = await startServer({ dataDir: dir });
    try {
      await createTrigger(server.url, 'graceful', {
        broker: 'default',
        subscriber: { uri: receiver.url },
      });
      const event = binaryEvent({ specversion: '1.0', id: 'in-flight', source: '/s', type: 't' });
      expect((await fetch(`${server.url}/default/default`, event)).status).toBe(202);
      await receiver.waitFor(1);
      server.child.kill('SIGTERM');
      await server.waitForOutput('"shutting down"');
      // While the delivery is held, the server no longer accepts connections or is no longer ready.
      const refused = await fetch(`${server.url}/readyz`).then(
        (r) => r.status,
        () => 'refused',
      );
      gate.open();
      expect(refused === 503 || refused === 'refused').toBe(true);
      expect(await server.exited).toEqual({ code: 0, signal: null });
      expect(server.output()).toContain('tributary stopped');

      // The finished delivery was acknowledged before exit: it is not delivered again.
      server = await startServer({ dataDir: dir });
      expect(
        (
          await fetch(
            `${server.url}/default/default`,
            binaryEvent({ specversion: '1.0', id: 'after', source: '/s', type: 't' }),
          )
        ).status,
      ).toBe(202);
      const ids = (await receiver.waitFor(2)).map((r) => r.headers['ce-id']);
      expect(ids).toEqual(['in-flight', 'after']);
    } finally {
      await server.stop();
      await receiver.stop();
    }
  });
});
