/**
 * The NATS backend's DeliveryLedger: a KV bucket `<prefix>-deliveries` whose entries expire with
 * the bucket's TTL (set when the bucket is first made: the --webhook-dedup-window of then); each
 * entry holds its own expiry too, so a shorter window later is honoured. Keys are hashed, as KV
 * keys allow few characters.
 */
import { createHash } from 'node:crypto';
import { Kvm, type KV } from '@nats-io/kv';
import { TributaryError } from '../../core/errors.js';
import type { DeliveryLedger } from '../contracts.js';
import type { NatsLink } from './connection.js';

function kvKey(key: string): string {
  return createHash('sha256').update(key).digest('base64url');
}

function unavailable(error: unknown): TributaryError {
  return new TributaryError('BACKEND_UNAVAILABLE', `NATS: ${(error as Error).message}`, {
    cause: error,
    retryAfter: 1,
  });
}

export class NatsLedger implements DeliveryLedger {
  private constructor(private readonly kv: KV) {}

  static async open(link: NatsLink, prefix: string, ttlMs: number): Promise<NatsLedger> {
    const kv = await new Kvm(link.nc).create(`${prefix}-deliveries`, { history: 1, ttl: ttlMs });
    return new NatsLedger(kv);
  }

  async has(key: string): Promise<boolean> {
    try {
      const entry = await this.kv.get(kvKey(key));
      return entry !== null && entry.operation === 'PUT' && Number(entry.string()) > Date.now();
    } catch (error) {
      throw unavailable(error);
    }
  }

  async add(key: string, ttlMs: number): Promise<void> {
    try {
      await this.kv.put(kvKey(key), String(Date.now() + ttlMs));
    } catch (error) {
      throw unavailable(error);
    }
  }
}
