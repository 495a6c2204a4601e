/**
 * The NATS backend's connection options against private nats-servers configured for each kind of
 * authentication: user and password, token, NKey, credentials file (operator JWTs), and TLS with
 * client certificates. Right credentials open the backend; wrong ones fail at once with a
 * TributaryError that says why.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { jetstreamManager, StorageType } from '@nats-io/jetstream';
import { nkeys, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openNatsLink } from '../../src/backends/nats/connection.js';
import { createNatsBackend, type NatsBackendOptions } from '../../src/backends/nats/index.js';
import { loadConfig } from '../../src/config.js';
import { TributaryError } from '../../src/core/errors.js';
import { startServer } from '../../src/server.js';
import { createOperator, createTlsFiles, credsFileText } from '../support/nats-credentials.js';
import {
  natsServerBinary,
  skipWithoutNatsServer,
  startNatsServer,
  type NatsServer,
  type NatsServerOptions,
} from '../support/nats-server.js';
import { removeTempDirs, tempDir } from '../support/temp-dir.js';

const servers: NatsServer[] = [];

async function natsServer(options: NatsServerOptions): Promise<NatsServer> {
  const server = await startNatsServer(options);
  servers.push(server);
  return server;
}

afterAll(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  removeTempDirs();
});

/** Opens the backend with `options`, checks it is up, and closes it. */
async function opens(options: NatsBackendOptions): Promise<void> {
  const backend = await createNatsBackend({ prefix: 'conn-test', ...options });
  try {
    expect(backend.name).toBe('nats');
    expect(backend.eventLog.isHealthy()).toBe(true);
  } finally {
    await backend.close();
  }
}

/** The TributaryError createNatsBackend fails with for `options`. */
async function refused(options: NatsBackendOptions): Promise<TributaryError> {
  const outcome = await createNatsBackend({ prefix: 'conn-test', ...options }).then(
    async (backend) => {
      await backend.close();
      return undefined;
    },
    (error: unknown) => error,
  );
  if (outcome === undefined) throw new Error('createNatsBackend opened with wrong credentials');
  expect(outcome).toBeInstanceOf(TributaryError);
  return outcome as TributaryError;
}

/** Resolves on the connection's next status event of this type. */
async function nextStatus(nc: NatsConnection, type: string): Promise<void> {
  for await (const status of nc.status()) if (status.type === type) return;
}

/** A file in `dir` holding `text`. */
function file(dir: string, name: string, text: string): string {
  const where = path.join(dir, name);
  writeFileSync(where, text, { encoding: 'utf8', mode: 0o600 });
  return where;
}

describe.skipIf(skipWithoutNatsServer)('NATS connection options', () => {
  describe('user and password', () => {
    let server: NatsServer;
    beforeAll(async () => {
      server = await natsServer({
        config: 'authorization { users = [ { user: alice, password: "wonder-land" } ] }\n',
      });
    });

    it('opens with the right password', async () => {
      await opens({ url: server.url, user: 'alice', password: 'wonder-land' });
    });

    it('fails with an authorization error, not a hang, with a wrong password or none', async () => {
      for (const options of [
        { user: 'alice', password: 'looking-glass' },
        { user: 'mallory', password: 'wonder-land' },
        {},
      ]) {
        const error = await refused({ url: server.url, ...options });
        expect(error.code).toBe('BACKEND_UNAVAILABLE');
        expect(error.message).toContain(`Cannot connect to NATS at ${server.url}`);
        expect(error.message).toMatch(/authorization/i);
      }
    });

    it('is what `serve --backend nats` uses: a wrong password stops the start with the reason', async () => {
      const config = loadConfig({
        flags: { backend: 'nats', port: '0', 'log-level': 'silent', 'nats-url': server.url },
        env: { TRIBUTARY_NATS_USER: 'alice', TRIBUTARY_NATS_PASSWORD: 'looking-glass' },
      });
      const outcome = await startServer(config).then(
        async (running) => {
          await running.close();
          return undefined;
        },
        (error: unknown) => error,
      );
      expect(outcome).toBeInstanceOf(TributaryError);
      expect((outcome as TributaryError).message).toMatch(/authorization/i);
    });
  });

  describe('token', () => {
    let server: NatsServer;
    beforeAll(async () => {
      server = await natsServer({ config: 'authorization { token: "s3cr3t-t0ken" }\n' });
    });

    it('opens with the right token', async () => {
      await opens({ url: server.url, token: 's3cr3t-t0ken' });
    });

    it('fails with an authorization error with a wrong token or none', async () => {
      for (const options of [{ token: 'guess' }, {}]) {
        const error = await refused({ url: server.url, ...options });
        expect(error.code).toBe('BACKEND_UNAVAILABLE');
        expect(error.message).toMatch(/authorization/i);
      }
    });
  });

  describe('NKey', () => {
    let server: NatsServer;
    let dir: string;
    const user = nkeys.createUser();
    beforeAll(async () => {
      dir = tempDir('tributary-nkey-');
      server = await natsServer({
        config: `authorization { users = [ { nkey: ${user.getPublicKey()} } ] }\n`,
      });
    });

    it('opens with the seed of the allowed user, read from a file', async () => {
      const seed = new TextDecoder().decode(user.getSeed());
      expect(seed).toMatch(/^SU/);
      await opens({ url: server.url, nkeySeedFile: file(dir, 'user.nk', `${seed}\n`) });
    });

    it('fails with an authorization error with the seed of another user', async () => {
      const other = new TextDecoder().decode(nkeys.createUser().getSeed());
      const error = await refused({ url: server.url, nkeySeedFile: file(dir, 'other.nk', other) });
      expect(error.code).toBe('BACKEND_UNAVAILABLE');
      expect(error.message).toMatch(/authorization/i);
    });

    it('fails with CONFIG_INVALID naming a seed file that cannot be read', async () => {
      const missing = path.join(dir, 'missing.nk');
      const error = await refused({ url: server.url, nkeySeedFile: missing });
      expect(error.code).toBe('CONFIG_INVALID');
      expect(error.message).toContain(missing);
    });
  });

  describe('credentials file (operator, account and user JWTs)', () => {
    let server: NatsServer;
    let dir: string;
    const operator = createOperator();
    beforeAll(async () => {
      dir = tempDir('tributary-creds-');
      server = await natsServer({ config: operator.serverConfig });
    });

    it('opens with a user of the account, JetStream included', async () => {
      const user = nkeys.createUser();
      const creds = file(dir, 'user.creds', credsFileText(operator.userJwt(user), user));
      await opens({ url: server.url, credentialsFile: creds });
    });

    it('fails with an authorization error for a user of an account the server does not know', async () => {
      const user = nkeys.createUser();
      const stranger = nkeys.createAccount();
      const creds = file(
        dir,
        'stranger.creds',
        credsFileText(operator.userJwt(user, stranger), user),
      );
      const error = await refused({ url: server.url, credentialsFile: creds });
      expect(error.code).toBe('BACKEND_UNAVAILABLE');
      expect(error.message).toMatch(/authorization/i);
    });

    it('fails with an authorization error when the seed is not the JWT user', async () => {
      const user = nkeys.createUser();
      const creds = file(
        dir,
        'mismatch.creds',
        credsFileText(operator.userJwt(user), nkeys.createUser()),
      );
      const error = await refused({ url: server.url, credentialsFile: creds });
      expect(error.code).toBe('BACKEND_UNAVAILABLE');
      expect(error.message).toMatch(/authorization/i);
    });
  });

  describe('TLS with client certificates', () => {
    let server: NatsServer;
    let tls: Awaited<ReturnType<typeof createTlsFiles>>;
    beforeAll(async () => {
      tls = await createTlsFiles(tempDir('tributary-tls-'));
      server = await natsServer({
        config: [
          'tls {',
          `  cert_file: "${tls.serverCert}"`,
          `  key_file: "${tls.serverKey}"`,
          `  ca_file: "${tls.caCert}"`,
          '  verify: true',
          '  timeout: 2',
          '}',
          '',
        ].join('\n'),
      });
    });

    it('opens trusting the CA and presenting the client certificate', async () => {
      await opens({
        url: server.url,
        tlsCaFile: tls.caCert,
        tlsCertFile: tls.clientCert,
        tlsKeyFile: tls.clientKey,
      });
    });

    it('fails without the client certificate, saying that this may be why', async () => {
      // The server ends the connection after the handshake; the client only sees a timeout.
      const error = await refused({
        url: server.url,
        tlsCaFile: tls.caCert,
        connectTimeoutMs: 2_000,
      });
      expect(error.code).toBe('BACKEND_UNAVAILABLE');
      expect(error.message).toContain(`Cannot connect to NATS at ${server.url}: no answer`);
      expect(error.message).toContain('TLS client certificate');
      expect(server.output()).toContain("client didn't provide a certificate");
    });

    it('fails when the server certificate is not trusted (system CAs only)', async () => {
      const error = await refused({
        url: server.url,
        tls: true,
        tlsCertFile: tls.clientCert,
        tlsKeyFile: tls.clientKey,
      });
      expect(error.code).toBe('BACKEND_UNAVAILABLE');
      expect(error.message).toMatch(/certificate/i);
    });

    it('fails with no TLS option: the client follows the server to TLS but trusts only the system CAs', async () => {
      const error = await refused({ url: server.url });
      expect(error.code).toBe('BACKEND_UNAVAILABLE');
      expect(error.message).toMatch(/certificate/i);
    });
  });

  describe('a private nats-server (test support)', () => {
    it('stops and restarts on the same port and store, and a connection follows it', async () => {
      const server = await natsServer({});
      const link = await openNatsLink({ url: server.url });
      try {
        const jsm = await jetstreamManager(link.nc);
        await jsm.streams.add({ name: 'KEPT', subjects: ['kept.>'], storage: StorageType.File });
        const disconnected = nextStatus(link.nc, 'disconnect');
        await server.stop();
        expect(server.running()).toBe(false);
        await disconnected;
        // Let the link's own status loop see the same event.
        await new Promise<void>((resolve) => setImmediate(resolve));
        expect(link.connected()).toBe(false);

        const reconnected = new Promise<void>((resolve) => link.onReconnect(resolve));
        await server.restart();
        expect(server.running()).toBe(true);
        expect(server.output()).toContain(`127.0.0.1:${server.port}`);
        await reconnected;
        expect(link.connected()).toBe(true);
        expect((await jsm.streams.info('KEPT')).config.subjects).toEqual(['kept.>']);
      } finally {
        await link.close();
      }
    });

    it('says clearly when the nats-server binary cannot be found', async () => {
      const before = process.env.NATS_SERVER_BIN;
      process.env.NATS_SERVER_BIN = path.join(tempDir(), 'no-nats-server-here');
      try {
        expect(natsServerBinary()).toBeUndefined();
        await expect(startNatsServer()).rejects.toThrow(/nats-server is not installed/);
      } finally {
        if (before === undefined) delete process.env.NATS_SERVER_BIN;
        else process.env.NATS_SERVER_BIN = before;
      }
    });
  });
});
