/**
 * The NATS backend's one connection per process: options, authentication, TLS, and health from
 * the connection's status events. No NATS client type leaves src/backends/nats/.
 */
import { readFileSync } from 'node:fs';
import {
  connect,
  credsAuthenticator,
  nkeyAuthenticator,
  type Authenticator,
  type NatsConnection,
  type NodeConnectionOptions,
} from '@nats-io/transport-node';
import { TributaryError } from '../../core/errors.js';

export interface NatsConnectionOptions {
  /** One or more server URLs, comma separated (`nats://127.0.0.1:4222`). */
  readonly url: string;
  readonly user?: string;
  readonly password?: string;
  readonly token?: string;
  /** A file holding an NKey seed (`SU...`). */
  readonly nkeySeedFile?: string;
  /** A `.creds` file (user JWT and NKey seed). */
  readonly credentialsFile?: string;
  /** PEM files for TLS: the CA to trust, and a client certificate and key. */
  readonly tlsCaFile?: string;
  readonly tlsCertFile?: string;
  readonly tlsKeyFile?: string;
  /** Use TLS even without any of the files (trusting the system's CAs). */
  readonly tls?: boolean;
  /** Name shown in the server's connection list. */
  readonly name?: string;
  /** Timeout of the first connection, in ms (default 5 s). */
  readonly connectTimeoutMs?: number;
}

function readOption(file: string, what: string): Uint8Array {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new TributaryError('CONFIG_INVALID', `Cannot read the NATS ${what} ${file}`, {
      cause: error,
    });
  }
}

/** The client options for `options`; files are read here, so a missing one fails at start. */
export function clientOptions(options: NatsConnectionOptions): NodeConnectionOptions {
  const servers = options.url
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (servers.length === 0) throw new TributaryError('CONFIG_INVALID', 'The NATS URL is empty');
  const authenticators: Authenticator[] = [];
  if (options.nkeySeedFile !== undefined) {
    const seed = new TextDecoder().decode(readOption(options.nkeySeedFile, 'NKey seed file'));
    authenticators.push(nkeyAuthenticator(new TextEncoder().encode(seed.trim())));
  }
  if (options.credentialsFile !== undefined) {
    authenticators.push(
      credsAuthenticator(readOption(options.credentialsFile, 'credentials file')),
    );
  }
  const tlsWanted =
    options.tls === true ||
    options.tlsCaFile !== undefined ||
    options.tlsCertFile !== undefined ||
    options.tlsKeyFile !== undefined;
  if ((options.tlsCertFile === undefined) !== (options.tlsKeyFile === undefined)) {
    throw new TributaryError(
      'CONFIG_INVALID',
      'A NATS TLS client certificate needs both the certificate and the key file',
    );
  }
  return {
    servers,
    name: options.name ?? 'tributary',
    timeout: options.connectTimeoutMs ?? 5_000,
    // Keep trying for ever: an outage makes the ingress answer 503, and it recovers by itself.
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    waitOnFirstConnect: false,
    ...(options.user === undefined ? {} : { user: options.user, pass: options.password ?? '' }),
    ...(options.token === undefined ? {} : { token: options.token }),
    ...(authenticators.length === 0 ? {} : { authenticator: authenticators }),
    ...(tlsWanted
      ? {
          tls: {
            ...(options.tlsCaFile === undefined ? {} : { caFile: options.tlsCaFile }),
            ...(options.tlsCertFile === undefined ? {} : { certFile: options.tlsCertFile }),
            ...(options.tlsKeyFile === undefined ? {} : { keyFile: options.tlsKeyFile }),
          },
        }
      : {}),
  };
}

/** A connection and whether it is up now. */
export interface NatsLink {
  readonly nc: NatsConnection;
  /** False from a disconnect until the next reconnect. */
  connected(): boolean;
  /** Listeners called on every disconnect (false) and reconnect (true). */
  onStatus(listener: (up: boolean) => void): void;
  /** Listeners called on every reconnect (consumers re-check their state). */
  onReconnect(listener: () => void): void;
  close(): Promise<void>;
}

export async function openNatsLink(options: NatsConnectionOptions): Promise<NatsLink> {
  let nc: NatsConnection;
  try {
    nc = await connect(clientOptions(options));
  } catch (error) {
    if (error instanceof TributaryError) throw error;
    let reason = (error as Error).message;
    if ((error as Error).name === 'TimeoutError') {
      // The client does not report a TLS alert that arrives after its side of the handshake (a
      // server refusing a connection without a client certificate): it just times out.
      reason = `no answer within ${options.connectTimeoutMs ?? 5_000} ms${
        options.tlsCertFile === undefined
          ? ' (a server that requires a TLS client certificate ends a connection without one this way too)'
          : ''
      }`;
    }
    throw new TributaryError(
      'BACKEND_UNAVAILABLE',
      `Cannot connect to NATS at ${options.url}: ${reason}`,
      { cause: error },
    );
  }
  let up = true;
  const listeners: ((up: boolean) => void)[] = [];
  const changed = (now: boolean): void => {
    if (now === up) return;
    up = now;
    for (const listener of listeners) listener(now);
  };
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect') changed(false);
      else if (status.type === 'reconnect') changed(true);
    }
  })().catch(() => {});
  let closing: Promise<void> | undefined;
  return {
    nc,
    connected: () => up && !nc.isClosed(),
    onStatus: (listener) => listeners.push(listener),
    onReconnect: (listener) =>
      listeners.push((now) => {
        if (now) listener();
      }),
    close: () => {
      closing ??= nc.close().catch(() => {});
      return closing;
    },
  };
}
