/**
 * Sends one HTTP request to a subscriber and classifies the outcome. Connections are kept alive
 * and pooled per origin by Node's agents; concurrency is bounded by the callers (each trigger has
 * its own in-flight limit), so one slow subscriber cannot starve another's sockets.
 *
 * Every connection passes the outbound policy (core/outbound.ts): an IP literal is checked before
 * the request is made, a host name when it is resolved for a new connection, so only addresses
 * the policy allows are ever connected to. A refusal is a permanent failure: retrying cannot
 * change the policy's answer (docs/outbound.md).
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import type { AttemptResult } from '../core/delivery.js';
import { OutboundPolicy } from '../core/outbound.js';

export interface HttpResponse {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  /** At most `maxBodyBytes` of the body; `truncated` says whether more was sent. */
  readonly body: Buffer;
  readonly truncated: boolean;
}

export interface SendOptions {
  readonly timeoutMs: number;
  readonly maxBodyBytes: number;
  readonly signal?: AbortSignal;
}

export type SendOutcome =
  | { readonly result: AttemptResult & { kind: 'response' }; readonly response: HttpResponse }
  | {
      readonly result: AttemptResult & { kind: 'network' | 'timeout' };
      readonly response?: undefined;
    };

const agentOptions = {
  keepAlive: true,
  keepAliveMsecs: 1000,
  maxFreeSockets: 256,
  scheduling: 'lifo',
} as const;
const httpAgent = new http.Agent(agentOptions);
const httpsAgent = new https.Agent(agentOptions);

/** The policy every delivery passes; the server sets it from its configuration at start. */
let policy = new OutboundPolicy();

export function setOutboundPolicy(next: OutboundPolicy): void {
  policy = next;
}

/** A connection the outbound policy refused; carried through the socket's error event. */
export class OutboundRefusedError extends Error {
  readonly code = 'ERR_OUTBOUND_REFUSED';
}

/**
 * Resolves like dns.lookup, then keeps only the addresses the policy allows; with none left the
 * connection fails with OutboundRefusedError and nothing is connected to.
 */
const guardedLookup: LookupFunction = (hostname, options, callback) => {
  dnsLookup(hostname, { ...options, all: true }, (error, addresses: LookupAddress[]) => {
    if (error !== null) {
      callback(error, options.all === true ? [] : '', 0);
      return;
    }
    const allowed = policy.nameAllowed(hostname)
      ? addresses
      : addresses.filter((a) => policy.checkAddress(a.address, hostname).allowed);
    if (allowed.length === 0) {
      const verdict = addresses
        .map((a) => policy.checkAddress(a.address, hostname))
        .find((v) => !v.allowed);
      const reason =
        verdict !== undefined && !verdict.allowed ? verdict.reason : `${hostname} has no address`;
      callback(new OutboundRefusedError(reason), options.all === true ? [] : '', 0);
      return;
    }
    if (options.all === true) callback(null, allowed);
    else callback(null, allowed[0]!.address, allowed[0]!.family);
  });
};

/** Closes idle pooled connections (on shutdown). */
export function destroyAgents(): void {
  httpAgent.destroy();
  httpsAgent.destroy();
}

export function send(
  url: URL,
  headers: Record<string, string>,
  body: Uint8Array | undefined,
  options: SendOptions,
): Promise<SendOutcome> {
  return new Promise((resolve) => {
    const secure = url.protocol === 'https:';
    let settled = false;
    const finish = (outcome: SendOutcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      resolve(outcome);
    };
    const verdict = policy.checkHost(url.hostname);
    if (verdict.allowed === false) {
      resolve({ result: { kind: 'network', message: verdict.reason, permanent: true } });
      return;
    }
    const requestHeaders: Record<string, string | number> = { ...headers };
    requestHeaders['content-length'] = body?.byteLength ?? 0;
    const request = (secure ? https : http).request(url, {
      method: 'POST',
      headers: requestHeaders,
      agent: secure ? httpsAgent : httpAgent,
      // Names only: Node connects to an IP literal without a lookup (checked above).
      ...(verdict.allowed === true ? {} : { lookup: guardedLookup }),
    });
    const timer = setTimeout(() => {
      finish({ result: { kind: 'timeout' } });
      request.destroy();
    }, options.timeoutMs);
    const onAbort = (): void => {
      finish({ result: { kind: 'network', message: 'aborted' } });
      request.destroy();
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    request.on('error', (error) =>
      finish({
        result:
          error instanceof OutboundRefusedError
            ? { kind: 'network', message: error.message, permanent: true }
            : { kind: 'network', message: error.message },
      }),
    );
    request.on('response', (response) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let truncated = false;
      response.on('data', (chunk: Buffer) => {
        if (size >= options.maxBodyBytes) {
          truncated = true;
          return;
        }
        const room = options.maxBodyBytes - size;
        if (chunk.byteLength > room) truncated = true;
        const kept = chunk.byteLength > room ? chunk.subarray(0, room) : chunk;
        chunks.push(kept);
        size += kept.byteLength;
      });
      response.on('error', (error) =>
        finish({ result: { kind: 'network', message: error.message } }),
      );
      response.on('end', () => {
        const status = response.statusCode ?? 0;
        const retryAfter = response.headers['retry-after'];
        finish({
          result: { kind: 'response', status, ...(retryAfter === undefined ? {} : { retryAfter }) },
          response: {
            status,
            headers: response.headers,
            body: Buffer.concat(chunks, size),
            truncated,
          },
        });
      });
    });
    request.end(
      body === undefined ? undefined : Buffer.from(body.buffer, body.byteOffset, body.byteLength),
    );
  });
}
