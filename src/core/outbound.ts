/**
 * Outbound safety: which addresses the broker may open connections to when it delivers to a
 * subscriber, a sink or a dead-letter sink. A delivery URI is user input, so without a policy a
 * Trigger could make the broker POST to a cloud metadata service (169.254.169.254 hands out
 * credentials on most clouds) or to anything on the host's networks.
 *
 * Pure: classification of IP literals and host names, and the policy that decides. The HTTP
 * sender applies the policy to the addresses a host name resolves to at connect time (so a name
 * that later resolves elsewhere, DNS rebinding, gains nothing); validation applies it to the URIs
 * whose host is an IP literal or a known metadata name when a resource is applied.
 */

export const ADDRESS_CLASSES = [
  'public',
  'private',
  'loopback',
  'link-local',
  'metadata',
  'unspecified',
  'multicast',
  'broadcast',
  'reserved',
] as const;
export type AddressClass = (typeof ADDRESS_CLASSES)[number];

/** A parsed address: 4 bytes (IPv4) or 16 bytes (IPv6). */
type Bytes = readonly number[];

/** Parses a dotted-quad IPv4 address in its canonical decimal form (as URL and DNS give it). */
function parseIPv4(text: string): Bytes | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  const bytes: number[] = [];
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part)) return undefined;
    const n = Number(part);
    if (n > 255) return undefined;
    bytes.push(n);
  }
  return bytes;
}

/** Parses an IPv6 address (with `::`, an embedded dotted quad, no zone) into 16 bytes. */
function parseIPv6(text: string): Bytes | undefined {
  let body = text;
  let tail: number[] = [];
  const lastColon = body.lastIndexOf(':');
  if (body.includes('.', lastColon)) {
    const v4 = parseIPv4(body.slice(lastColon + 1));
    if (v4 === undefined) return undefined;
    tail = [(v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!];
    body = body.slice(0, lastColon + 1);
    // `::1.2.3.4` leaves `::`; `::ffff:1.2.3.4` leaves `::ffff:`.
    if (body.endsWith(':') && !body.endsWith('::')) body = body.slice(0, -1);
  }
  const halves = body.split('::');
  if (halves.length > 2) return undefined;
  const groups = (half: string): number[] | undefined => {
    if (half === '') return [];
    const out: number[] = [];
    for (const g of half.split(':')) {
      if (!/^[0-9a-f]{1,4}$/i.test(g)) return undefined;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const head = groups(halves[0]!);
  const rest = halves.length === 2 ? groups(halves[1]!) : [];
  if (head === undefined || rest === undefined) return undefined;
  const given = head.length + rest.length + tail.length;
  let words: number[];
  if (halves.length === 2) {
    if (given > 7) return undefined;
    words = [...head, ...new Array<number>(8 - given).fill(0), ...rest, ...tail];
  } else {
    if (given !== 8) return undefined;
    words = [...head, ...tail];
  }
  return words.flatMap((w) => [w >> 8, w & 0xff]);
}

/**
 * The bytes of an IP literal: `1.2.3.4`, `::1`, `[::1]` (as URL.hostname gives it), with an
 * optional zone (`fe80::1%eth0`); undefined for anything else, host names included.
 */
export function parseIp(text: string): Bytes | undefined {
  let t = text.trim();
  if (t.startsWith('[') && t.endsWith(']')) t = t.slice(1, -1);
  const zone = t.indexOf('%');
  if (zone >= 0) t = t.slice(0, zone);
  return t.includes(':') ? parseIPv6(t) : parseIPv4(t);
}

/** Whether the first `bits` bits of `a` and `b` agree. */
function samePrefix(a: Bytes, b: Bytes, bits: number): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < bits; i += 8) {
    const left = bits - i;
    const mask = left >= 8 ? 0xff : (0xff << (8 - left)) & 0xff;
    if ((a[i / 8]! & mask) !== (b[i / 8]! & mask)) return false;
  }
  return true;
}

function cidr(text: string): { bytes: Bytes; bits: number } {
  const [ip, bits] = text.split('/');
  return { bytes: parseIp(ip!)!, bits: Number(bits) };
}

/** Cloud instance metadata services: AWS (with ECS and EKS agents), Azure, GCP, Oracle, Alibaba, Tencent. */
const METADATA_ADDRESSES = [
  '169.254.169.254',
  '169.254.170.2',
  '169.254.170.23',
  '169.254.0.23',
  '100.100.100.200',
  'fd00:ec2::254',
  'fd00:ec2::23',
].map((ip) => parseIp(ip)!);

/** Host names of metadata services, refused by name before any resolution. */
export const METADATA_HOSTS: ReadonlySet<string> = new Set([
  'metadata.google.internal',
  'metadata.goog',
  'instance-data.ec2.internal',
  'metadata.tencentyun.com',
]);

const V4_RANGES: readonly [string, AddressClass][] = [
  ['0.0.0.0/8', 'unspecified'],
  ['127.0.0.0/8', 'loopback'],
  ['10.0.0.0/8', 'private'],
  ['172.16.0.0/12', 'private'],
  ['192.168.0.0/16', 'private'],
  ['100.64.0.0/10', 'private'],
  ['169.254.0.0/16', 'link-local'],
  ['224.0.0.0/4', 'multicast'],
  ['255.255.255.255/32', 'broadcast'],
  ['240.0.0.0/4', 'reserved'],
];
const V6_RANGES: readonly [string, AddressClass][] = [
  ['::/128', 'unspecified'],
  ['::1/128', 'loopback'],
  ['fe80::/10', 'link-local'],
  ['fec0::/10', 'private'],
  ['fc00::/7', 'private'],
  ['64:ff9b:1::/48', 'private'],
  ['ff00::/8', 'multicast'],
];
const V4_TABLE = V4_RANGES.map(([range, cls]) => ({ ...cidr(range), cls }));
const V6_TABLE = V6_RANGES.map(([range, cls]) => ({ ...cidr(range), cls }));

/**
 * IPv6 forms that carry an IPv4 address a connection would in effect reach: IPv4-mapped
 * (::ffff:0:0/96), IPv4-compatible (::/96), NAT64 (64:ff9b::/96) and 6to4 (2002::/16).
 */
function embeddedIPv4(bytes: Bytes): Bytes | undefined {
  const zeros = (from: number, to: number): boolean => bytes.slice(from, to).every((b) => b === 0);
  if (zeros(0, 10) && bytes[10] === 0xff && bytes[11] === 0xff) return bytes.slice(12);
  if (zeros(0, 12) && !zeros(12, 15)) return bytes.slice(12);
  if (
    bytes[0] === 0x00 &&
    bytes[1] === 0x64 &&
    bytes[2] === 0xff &&
    bytes[3] === 0x9b &&
    zeros(4, 12)
  ) {
    return bytes.slice(12);
  }
  if (bytes[0] === 0x20 && bytes[1] === 0x02) return bytes.slice(2, 6);
  return undefined;
}

function classifyBytes(bytes: Bytes): AddressClass {
  if (
    METADATA_ADDRESSES.some((m) => m.length === bytes.length && samePrefix(m, bytes, m.length * 8))
  )
    return 'metadata';
  if (bytes.length === 16) {
    const v4 = embeddedIPv4(bytes);
    if (v4 !== undefined) return classifyBytes(v4);
  }
  const table = bytes.length === 4 ? V4_TABLE : V6_TABLE;
  return table.find((r) => samePrefix(r.bytes, bytes, r.bits))?.cls ?? 'public';
}

/** The class of an IP literal, or undefined when `ip` is not one. */
export function classifyIp(ip: string): AddressClass | undefined {
  const bytes = parseIp(ip);
  return bytes === undefined ? undefined : classifyBytes(bytes);
}

/** A host name in the form rules compare: lower case, without a trailing dot. */
function normalName(host: string): string {
  const lower = host.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/**
 * The class of a URL's host as far as it is known without resolving it: an IP literal's class,
 * `metadata` for a known metadata host name, undefined for other names.
 */
export function classifyHost(host: string): AddressClass | undefined {
  return classifyIp(host) ?? (METADATA_HOSTS.has(normalName(host)) ? 'metadata' : undefined);
}

// ---------------------------------------------------------------------------------------------
// Policy

export interface OutboundOptions {
  /** Loopback and private ranges (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7). */
  readonly allowPrivate: boolean;
  /** 169.254/16 and fe80::/10, metadata addresses excepted. */
  readonly allowLinkLocal: boolean;
  /** CIDRs, IP addresses and host names (`*.example.com` for subdomains) always allowed. */
  readonly allow: readonly string[];
  /** CIDRs, IP addresses and host names always refused. */
  readonly deny: readonly string[];
}

export const DEFAULT_OUTBOUND: OutboundOptions = {
  allowPrivate: true,
  allowLinkLocal: false,
  allow: [],
  deny: [],
};

type Rule =
  | { readonly kind: 'net'; readonly bytes: Bytes; readonly bits: number }
  | { readonly kind: 'name'; readonly name: string; readonly subdomains: boolean };

/** Why a rule entry cannot be used, or undefined when it can (for the configuration). */
export function outboundRuleProblem(entry: string): string | undefined {
  return parseRule(entry) === undefined
    ? `"${entry}" is neither an IP address, a CIDR (10.0.0.0/8, fd00::/8) nor a host name`
    : undefined;
}

function parseRule(entry: string): Rule | undefined {
  const text = entry.trim();
  const slash = text.indexOf('/');
  if (slash >= 0) {
    const bytes = parseIp(text.slice(0, slash));
    const bitsText = text.slice(slash + 1);
    if (bytes === undefined || !/^\d{1,3}$/.test(bitsText)) return undefined;
    const bits = Number(bitsText);
    return bits <= bytes.length * 8 ? { kind: 'net', bytes, bits } : undefined;
  }
  const bytes = parseIp(text);
  if (bytes !== undefined) return { kind: 'net', bytes, bits: bytes.length * 8 };
  const subdomains = text.startsWith('*.');
  const name = normalName(subdomains ? text.slice(2) : text);
  if (!/^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$/.test(name))
    return undefined;
  return { kind: 'name', name, subdomains };
}

/** How specific a matching rule is (longer prefixes win; a host name beats any CIDR), or -1. */
function matchLength(rule: Rule, bytes: Bytes | undefined, name: string | undefined): number {
  if (rule.kind === 'name') {
    if (name === undefined) return -1;
    // `*.example.com` covers the names under example.com, not example.com itself.
    if (rule.subdomains) return name.endsWith(`.${rule.name}`) ? 999 : -1;
    return name === rule.name ? 1000 : -1;
  }
  if (bytes === undefined) return -1;
  if (rule.bytes.length === bytes.length) {
    return samePrefix(rule.bytes, bytes, rule.bits) ? rule.bits : -1;
  }
  // An IPv4 rule also covers the IPv6 forms that carry that IPv4 address (::ffff:a.b.c.d).
  const v4 = bytes.length === 16 ? embeddedIPv4(bytes) : undefined;
  return v4 !== undefined && rule.bytes.length === 4 && samePrefix(rule.bytes, v4, rule.bits)
    ? rule.bits
    : -1;
}

export type Verdict =
  { readonly allowed: true } | { readonly allowed: false; readonly reason: string };

const ALLOWED: Verdict = { allowed: true };

export class OutboundPolicy {
  private readonly allowRules: readonly Rule[];
  private readonly denyRules: readonly Rule[];

  constructor(readonly options: OutboundOptions = DEFAULT_OUTBOUND) {
    const rules = (entries: readonly string[]): Rule[] =>
      entries.flatMap((e) => {
        const rule = parseRule(e);
        if (rule === undefined) throw new Error(outboundRuleProblem(e));
        return [rule];
      });
    this.allowRules = rules(options.allow);
    this.denyRules = rules(options.deny);
  }

  /** An explicit rule's say about an address or name: true, false, or undefined for no rule. */
  private explicit(bytes: Bytes | undefined, name: string | undefined): boolean | undefined {
    const best = (rules: readonly Rule[]): number =>
      Math.max(-1, ...rules.map((r) => matchLength(r, bytes, name)));
    const allow = best(this.allowRules);
    const deny = best(this.denyRules);
    if (allow < 0 && deny < 0) return undefined;
    // The more specific rule wins; on a tie, deny.
    return allow > deny;
  }

  private classAllowed(cls: AddressClass): boolean {
    switch (cls) {
      case 'public':
        return true;
      case 'private':
      case 'loopback':
        return this.options.allowPrivate;
      case 'link-local':
        return this.options.allowLinkLocal;
      default:
        // Metadata services, 0.0.0.0 (which reaches the host itself), multicast, broadcast and
        // reserved ranges: only an explicit --outbound-allow lets them through.
        return false;
    }
  }

  /**
   * Whether a connection to the address `ip` may be made; `host` is the name it was resolved
   * from, when there was one (a rule on the name then decides for all its addresses).
   */
  checkAddress(ip: string, host?: string): Verdict {
    const bytes = parseIp(ip);
    const name = host === undefined ? undefined : normalName(host);
    const rule = this.explicit(bytes, name);
    if (rule === true) return ALLOWED;
    const shown = name === undefined || name === ip ? ip : `${name} (${ip})`;
    if (rule === false) return { allowed: false, reason: `${shown} is denied by --outbound-deny` };
    if (bytes === undefined) return { allowed: false, reason: `${ip} is not an IP address` };
    const cls = classifyBytes(bytes);
    return this.classAllowed(cls) ? ALLOWED : { allowed: false, reason: refusal(shown, cls) };
  }

  /**
   * What can be decided from a URL's host alone (URL.hostname: `[::1]` brackets and all):
   * refused for an IP literal or a known metadata name the policy refuses, or a denied name;
   * `allowed` for an allowed literal or name; `resolve` when the answer depends on what the name
   * resolves to.
   */
  checkHost(host: string): Verdict | { readonly allowed: 'resolve' } {
    const bytes = parseIp(host);
    if (bytes !== undefined) {
      const ip = host.startsWith('[') ? host.slice(1, -1) : host;
      return this.checkAddress(ip);
    }
    const name = normalName(host);
    const rule = this.explicit(undefined, name);
    if (rule === true) return ALLOWED;
    if (rule === false) return { allowed: false, reason: `${name} is denied by --outbound-deny` };
    if (METADATA_HOSTS.has(name)) return { allowed: false, reason: refusal(name, 'metadata') };
    return { allowed: 'resolve' };
  }

  /** Whether any rule names `host` itself (then its resolved addresses are not checked). */
  nameAllowed(host: string): boolean {
    return this.explicit(undefined, normalName(host)) === true;
  }
}

const FLAG: Partial<Record<AddressClass, string>> = {
  private: '--outbound-allow-private',
  loopback: '--outbound-allow-private',
  'link-local': '--outbound-allow-link-local',
};

function refusal(shown: string, cls: AddressClass): string {
  const what = cls === 'metadata' ? 'a cloud metadata address' : cls === 'public' ? 'public' : cls;
  const how = FLAG[cls] === undefined ? '--outbound-allow' : `${FLAG[cls]} or --outbound-allow`;
  return `${shown} is ${what}, refused by the outbound policy (see ${how})`;
}
