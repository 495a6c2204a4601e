/**
 * Names of the JetStream objects of one deployment (prefix). Namespaces and broker names are
 * DNS-1123 labels, so `_` and `.` never occur in them and can separate; subscription ids are
 * escaped to what subjects, consumer names and KV keys all accept.
 */
import type { BrokerRef } from '../contracts.js';

export class Names {
  readonly retryStream: string;
  readonly deadStream: string;
  readonly notesBucket: string;
  readonly leasesBucket: string;

  constructor(readonly prefix: string) {
    this.retryStream = `${prefix}_RETRY`;
    this.deadStream = `${prefix}_DEAD`;
    this.notesBucket = `${prefix}-notes`;
    this.leasesBucket = `${prefix}-leases`;
  }

  /** The broker's stream. */
  stream(broker: BrokerRef): string {
    return `${this.prefix}_E_${broker.namespace}_${broker.name}`;
  }

  /** The one subject of the broker's stream. */
  subject(broker: BrokerRef): string {
    return `${this.prefix}.e.${broker.namespace}.${broker.name}`;
  }

  retrySubjects(): string {
    return `${this.prefix}.retry.>`;
  }

  deadSubjects(): string {
    return `${this.prefix}.dead.>`;
  }

  /** Every retry (or dead-letter) subject of a broker: for purges. */
  brokerRetries(broker: BrokerRef): string {
    return `${this.prefix}.retry.${broker.namespace}.${broker.name}.>`;
  }

  brokerDead(broker: BrokerRef): string {
    return `${this.prefix}.dead.${broker.namespace}.${broker.name}.>`;
  }

  retrySubject(broker: BrokerRef, id: string): string {
    return `${this.prefix}.retry.${broker.namespace}.${broker.name}.${token(id)}`;
  }

  deadSubject(broker: BrokerRef, id: string): string {
    return `${this.prefix}.dead.${broker.namespace}.${broker.name}.${token(id)}`;
  }

  /** The durable consumer of a subscription (on the broker stream and on the retry stream). */
  consumer(broker: BrokerRef, id: string): string {
    // Retry-stream consumers of different brokers share one stream: the name carries the broker.
    return `${broker.namespace}_${broker.name}_${token(id)}`;
  }

  /** KV key (notes, leases) of a subscription. */
  key(broker: BrokerRef, id: string): string {
    return `${broker.namespace}.${broker.name}.${token(id)}`;
  }
}

/**
 * `id` as one token of subjects, consumer names and KV keys: letters, digits and `-` stay, every
 * other character becomes `_` and its hex code (so distinct ids stay distinct).
 */
export function token(id: string): string {
  let out = '';
  for (const ch of id) {
    if (/[A-Za-z0-9-]/.test(ch)) out += ch;
    else out += `_${ch.codePointAt(0)!.toString(16)}_`;
  }
  return out;
}
