/**
 * A minimal HTTP/1.1 client for load generation: one keep-alive TCP connection, one request in
 * flight on it (no pipelining, as real CloudEvents senders do), requests given as ready-made bytes,
 * responses read only as far as the status and the end of the body. Built on `node:net` so that
 * the generator spends its core on sending, not on a general-purpose client (the approach of
 * autocannon and wrk).
 */
import net from 'node:net';

const HEADER_END = Buffer.from('\r\n\r\n', 'latin1');
const LAST_CHUNK = Buffer.from('0\r\n\r\n', 'latin1');

export class HttpConnection {
  private buffer: Buffer | undefined;
  private waiting: { resolve(status: number): void; reject(error: Error): void } | undefined;
  private closed = false;

  private constructor(private readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (error) => this.fail(error));
    socket.on('close', () => this.fail(new Error('the connection closed')));
  }

  static connect(host: string, port: number): Promise<HttpConnection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port });
      socket.once('connect', () => {
        socket.removeListener('error', reject);
        resolve(new HttpConnection(socket));
      });
      socket.once('error', reject);
    });
  }

  get busy(): boolean {
    return this.waiting !== undefined;
  }

  get alive(): boolean {
    return !this.closed;
  }

  /** Sends one request (complete bytes); resolves with the response's status code. */
  request(bytes: Buffer): Promise<number> {
    if (this.closed) return Promise.reject(new Error('the connection is closed'));
    if (this.waiting !== undefined) return Promise.reject(new Error('a request is in flight'));
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      this.socket.write(bytes);
    });
  }

  close(): void {
    this.closed = true;
    this.socket.destroy();
  }

  private fail(error: Error): void {
    this.closed = true;
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.reject(error);
  }

  private onData(chunk: Buffer): void {
    this.buffer = this.buffer === undefined ? chunk : Buffer.concat([this.buffer, chunk]);
    const buffer = this.buffer;
    const headerEnd = buffer.indexOf(HEADER_END);
    if (headerEnd < 0) return;
    const head = buffer.toString('latin1', 0, headerEnd).toLowerCase();
    const status = Number(head.slice(9, 12));
    const bodyStart = headerEnd + 4;
    let end: number;
    const length = /\r\ncontent-length:[ \t]*(\d+)/.exec(head);
    if (length !== null) {
      end = bodyStart + Number(length[1]);
      if (buffer.length < end) return;
    } else if (head.includes('\r\ntransfer-encoding: chunked')) {
      // Enough for the short bodies of a benchmark: the body ends at the last, empty chunk.
      const last = buffer.indexOf(LAST_CHUNK, bodyStart);
      if (last < 0) return;
      end = last + LAST_CHUNK.length;
    } else {
      end = bodyStart;
    }
    this.buffer = end < buffer.length ? buffer.subarray(end) : undefined;
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.resolve(status);
  }
}

/** The bytes of a POST request. */
export function postRequest(
  path: string,
  headers: Readonly<Record<string, string>>,
  body: Buffer,
): Buffer {
  let head = `POST ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\n`;
  for (const name in headers) head += `${name}: ${headers[name]}\r\n`;
  head += `content-length: ${body.length}\r\n\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), body]);
}

/** A JSON body of about `bytes` bytes. */
export function payload(bytes: number): Buffer {
  const filler = 'x'.repeat(Math.max(0, bytes - 32));
  return Buffer.from(JSON.stringify({ bench: true, filler }), 'utf8');
}
