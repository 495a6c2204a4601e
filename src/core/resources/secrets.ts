/**
 * Secrets inside source specs (`spec.secretToken`, `spec.signingToken`, `spec.accessToken`): the
 * API never returns a secret's value (DESIGN.md section 2). A read-back manifest carries
 * REDACTED in its place, and writing it back keeps the stored value, so GET then PUT is safe.
 */
import type { Resource } from './types.js';

export const SECRET_SPEC_FIELDS = ['secretToken', 'signingToken', 'accessToken'] as const;

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

function secretsOf(resource: Resource): Record<string, SecretRef | undefined> {
  return resource.spec as Record<string, SecretRef | undefined>;
}

/** The resource as the API shows it: every secret value replaced by REDACTED. */
export function redactSecrets(resource: Resource): Resource {
  const spec = secretsOf(resource);
  let redacted: Record<string, unknown> | undefined;
  for (const field of SECRET_SPEC_FIELDS) {
    const secret = spec[field];
    if (secret?.value === undefined) continue;
    redacted ??= { ...resource.spec };
    redacted[field] = { ...secret, value: REDACTED };
  }
  return redacted === undefined ? resource : { ...resource, spec: redacted };
}

/**
 * `incoming` with each REDACTED secret value replaced by the value `existing` stores for it (a
 * manifest read back and applied again keeps its secrets).
 */
export function restoreSecrets(incoming: Resource, existing: Resource | undefined): Resource {
  if (existing === undefined) return incoming;
  const spec = secretsOf(incoming);
  const stored = secretsOf(existing);
  let restored: Record<string, unknown> | undefined;
  for (const field of SECRET_SPEC_FIELDS) {
    const value = stored[field]?.value;
    if (spec[field]?.value !== REDACTED || value === undefined) continue;
    restored ??= { ...incoming.spec };
    restored[field] = { ...spec[field], value };
  }
  return restored === undefined ? incoming : { ...incoming, spec: restored };
}
