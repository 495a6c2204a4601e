/** The embedded backend's DeliveryLedger: a table of keys with their expiry, written in the group commit. */
import type { Database, Statement } from 'better-sqlite3';
import type { DeliveryLedger } from '../contracts.js';
import { rejection, type Writer } from './writer.js';

export class EmbeddedLedger implements DeliveryLedger {
  private readonly lookup: Statement<[string, number]>;
  private readonly upsert: Statement<[string, number]>;
  private readonly expire: Statement<[number]>;

  constructor(
    db: Database,
    private readonly writer: Writer,
  ) {
    this.lookup = db.prepare('SELECT 1 FROM delivery_ids WHERE key = ? AND expires_at > ?');
    this.upsert = db.prepare(
      'INSERT INTO delivery_ids (key, expires_at) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at',
    );
    this.expire = db.prepare('DELETE FROM delivery_ids WHERE expires_at <= ?');
  }

  has(key: string): Promise<boolean> {
    try {
      return Promise.resolve(this.lookup.get(key, Date.now()) !== undefined);
    } catch (error) {
      return rejection(error);
    }
  }

  add(key: string, ttlMs: number): Promise<void> {
    return this.writer.enqueue(() => {
      const now = Date.now();
      // Expired keys go as new ones come (the index makes this cheap).
      this.expire.run(now);
      this.upsert.run(key, now + ttlMs);
    });
  }
}
