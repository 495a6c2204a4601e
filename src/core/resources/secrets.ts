/**
 * Secrets inside source specs (`spec.secretToken`, `spec.net.sasl.password`, ...): the API never
 * returns a secret's value (DESIGN.md section 2). A read-back manifest carries REDACTED in its
 * place, and writing it back keeps the stored value, so GET then PUT is safe.
 */
import type { Resource } from './types.js';

/**
 * Where secrets sit in a source spec, as dotted paths under `spec`: the webhook sources' tokens,
 * the KafkaSource's SASL and TLS material (Knative's `net`), the RocketMQSource's and MnsSource's
 * credentials, the ApiServerSource's cluster token and CA certificate.
 */
export const SECRET_SPEC_FIELDS = [
  'secretToken',
  'signingToken',
  'accessToken',
  'net.sasl.user',
  'net.sasl.password',
  'net.sasl.type',
  'net.tls.cert',
  'net.tls.key',
  'net.tls.caCert',
  'credentials.accessKey',
  'credentials.secretKey',
  'credentials.securityToken',
  'cluster.token',
  'cluster.caCert',
] as const;

export type SecretField = (typeof SECRET_SPEC_FIELDS)[number];

/** What the API shows instead of a secret's value. */
export const REDACTED = '<redacted>';

/** A secret as a spec gives it; validated by validateSecretRef. */
export interface SecretRef {
  readonly value?: string;
  readonly env?: string;
  readonly secretKeyRef?: {
    readonly name: string;
    readonly key: string;
    readonly optional?: boolean;
  };
}

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** The secret at `field` (a dotted path under spec), if the spec has one there. */
export function secretAt(spec: Json, field: string): SecretRef | undefined {
  let node: unknown = spec;
  for (const part of field.split('.')) {
    if (!isObject(node)) return undefined;
    node = node[part];
  }
  return isObject(node) ? node : undefined;
}

/** A copy of `spec` with `field` (a dotted path) replaced; the objects on the way are copied. */
function withSecret(spec: Json, field: string, secret: SecretRef): Json {
  const [head, ...rest] = field.split('.') as [string, ...string[]];
  if (rest.length === 0) return { ...spec, [head]: secret };
  const child = spec[head];
  return { ...spec, [head]: withSecret(isObject(child) ? child : {}, rest.join('.'), secret) };
}

/** The spec's secret fields that are present. */
export function secretFieldsOf(spec: Json): SecretField[] {
  return SECRET_SPEC_FIELDS.filter((field) => secretAt(spec, field) !== undefined);
}

/** The resource as the API shows it: every secret value replaced by REDACTED. */
export function redactSecrets(resource: Resource): Resource {
  let spec = resource.spec;
  for (const field of SECRET_SPEC_FIELDS) {
    const secret = secretAt(spec, field);
    if (secret?.value === undefined) continue;
    spec = withSecret(spec, field, { ...secret, value: REDACTED });
  }
  return spec === resource.spec ? resource : { ...resource, spec };
}

/**
 * `incoming` with each REDACTED secret value replaced by the value `existing` stores for it (a
 * manifest read back and applied again keeps its secrets).
 */
export function restoreSecrets(incoming: Resource, existing: Resource | undefined): Resource {
  if (existing === undefined) return incoming;
  let spec = incoming.spec;
  for (const field of SECRET_SPEC_FIELDS) {
    const secret = secretAt(spec, field);
    const value = secretAt(existing.spec, field)?.value;
    if (secret?.value !== REDACTED || value === undefined) continue;
    spec = withSecret(spec, field, { ...secret, value });
  }
  return spec === incoming.spec ? incoming : { ...incoming, spec };
}
