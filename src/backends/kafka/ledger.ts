/**
 * The Kafka backend's DeliveryLedger: `<prefix>.deliveries`, a compacted topic whose records also
 * expire (compact and delete, retention = the longest window), read by every process into a map
 * of key -> expiry. A key added through one replica is seen by the others once they have read it
 * (normally within tens of milliseconds).
 */
import type { DeliveryLedger } from '../contracts.js';
import { TopicView, type ViewClients } from './topic-view.js';

export class KafkaLedger implements DeliveryLedger {
  private readonly expiries = new Map<string, number>();
  private view!: TopicView;

  static async open(
    clients: ViewClients,
    prefix: string,
    retentionMs: number,
  ): Promise<KafkaLedger> {
    const ledger = new KafkaLedger();
    ledger.view = await TopicView.open({
      ...clients,
      topic: `${prefix}.deliveries`,
      retentionMs,
      onRecord: (record) => {
        if (record.value === null) ledger.expiries.delete(record.key);
        else ledger.expiries.set(record.key, Number(record.value.toString('utf8')));
      },
    });
    return ledger;
  }

  has(key: string): Promise<boolean> {
    const now = Date.now();
    const until = this.expiries.get(key);
    if (until !== undefined && until <= now) this.expiries.delete(key);
    return Promise.resolve(until !== undefined && until > now);
  }

  async add(key: string, ttlMs: number): Promise<void> {
    await this.view.write(key, Buffer.from(String(Date.now() + ttlMs)));
  }

  close(): Promise<void> {
    return this.view.close();
  }
}
