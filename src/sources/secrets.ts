/**
 * Resolving the secrets a source spec names (`spec.secretToken`, ...) to their values, when the
 * source is applied (never per event): `{value}` as given, `{env}` from the server's environment,
 * `{secretKeyRef: {name, key}}` from the file `<secrets dir>/<name>/<key>`, where Kubernetes
 * would mount the secret (one trailing newline, as `echo` writes it, is not part of the value).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Resource } from '../core/resources/types.js';
import { secretAt, SECRET_SPEC_FIELDS, type SecretRef } from '../core/resources/secrets.js';
import type { ResolvedSecrets } from './contracts.js';

export interface SecretSources {
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Directory of `secretKeyRef` files. */
  readonly dir: string;
}

export type SecretsOutcome =
  | { readonly ok: true; readonly secrets: ResolvedSecrets }
  | { readonly ok: false; readonly message: string };

function resolveOne(ref: SecretRef, field: string, from: SecretSources): string {
  if (ref.value !== undefined) return ref.value;
  if (ref.env !== undefined) {
    const value = from.env[ref.env];
    if (value === undefined || value === '') {
      throw new Error(`spec.${field}: the environment variable ${ref.env} is not set`);
    }
    return value;
  }
  const { name, key } = ref.secretKeyRef!;
  const path = join(from.dir, name, key);
  try {
    return readFileSync(path, 'utf8').replace(/\r?\n$/, '');
  } catch (error) {
    throw new Error(`spec.${field}: cannot read ${path}: ${(error as Error).message}`);
  }
}

/** Every secret of the source's spec, or the first one that cannot be read. */
export function resolveSecrets(source: Resource, from: SecretSources): SecretsOutcome {
  const secrets: Record<string, string> = {};
  try {
    for (const field of SECRET_SPEC_FIELDS) {
      const ref = secretAt(source.spec, field);
      if (ref === undefined) continue;
      if (ref.secretKeyRef?.optional === true) {
        try {
          secrets[field] = resolveOne(ref, field, from);
        } catch {
          // An optional secret that is absent is no secret.
        }
        continue;
      }
      secrets[field] = resolveOne(ref, field, from);
    }
  } catch (error) {
    return { ok: false, message: (error as Error).message };
  }
  return { ok: true, secrets };
}
