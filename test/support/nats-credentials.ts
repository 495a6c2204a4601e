/**
 * Credentials for nats-server authentication tests, made on the spot: NKeys, decentralized-auth
 * JWTs (operator, account, user; the NATS JWT v2 claims, signed with ed25519 NKeys) and `.creds`
 * files, and a TLS CA with server and client certificates (openssl).
 */
import { createHash, randomUUID } from 'node:crypto';
import { nkeys } from '@nats-io/transport-node';

export type KeyPair = ReturnType<typeof nkeys.createUser>;

const utf8 = new TextEncoder();

function base64url(bytes: Uint8Array | string): string {
  return Buffer.from(typeof bytes === 'string' ? utf8.encode(bytes) : bytes).toString('base64url');
}

/** A JWT signed by `issuer` for `subject` with these `nats` claims (NATS JWT v2). */
function signJwt(
  issuer: KeyPair,
  subject: string,
  name: string,
  nats: Record<string, unknown>,
): string {
  const claims: Record<string, unknown> = {
    jti: '',
    iat: Math.floor(Date.now() / 1000),
    iss: issuer.getPublicKey(),
    name,
    sub: subject,
    nats: { ...nats, version: 2 },
  };
  // The JWT id: unique per token (a hash of the claims and a random salt).
  claims.jti = createHash('sha256')
    .update(JSON.stringify({ ...claims, salt: randomUUID() }))
    .digest('hex')
    .toUpperCase();
  const signed = `${base64url(JSON.stringify({ typ: 'JWT', alg: 'ed25519-nkey' }))}.${base64url(
    JSON.stringify(claims),
  )}`;
  return `${signed}.${base64url(issuer.sign(utf8.encode(signed)))}`;
}

/** Everything unlimited, JetStream included (a JetStream-less account is `disk_storage: 0`). */
const ACCOUNT_LIMITS = {
  subs: -1,
  data: -1,
  payload: -1,
  imports: -1,
  exports: -1,
  wildcards: true,
  conn: -1,
  leaf: -1,
  mem_storage: -1,
  disk_storage: -1,
  streams: -1,
  consumer: -1,
};

export interface Operator {
  readonly operator: KeyPair;
  readonly operatorJwt: string;
  readonly account: KeyPair;
  readonly accountJwt: string;
  readonly systemAccount: KeyPair;
  readonly systemAccountJwt: string;
  /** nats-server config for this operator: memory resolver preloaded with both accounts. */
  readonly serverConfig: string;
  /** A user of `account` (or of the given account key, even one the server does not know). */
  userJwt(user: KeyPair, account?: KeyPair): string;
}

/** An operator with one JetStream-enabled account and a system account. */
export function createOperator(): Operator {
  const operator = nkeys.createOperator();
  const account = nkeys.createAccount();
  const systemAccount = nkeys.createAccount();
  const operatorJwt = signJwt(operator, operator.getPublicKey(), 'tributary-test-operator', {
    type: 'operator',
    system_account: systemAccount.getPublicKey(),
  });
  const accountJwt = signJwt(operator, account.getPublicKey(), 'tributary-test', {
    type: 'account',
    limits: ACCOUNT_LIMITS,
    default_permissions: { pub: {}, sub: {} },
  });
  const systemAccountJwt = signJwt(operator, systemAccount.getPublicKey(), 'SYS', {
    type: 'account',
    limits: { ...ACCOUNT_LIMITS, mem_storage: 0, disk_storage: 0, streams: 0, consumer: 0 },
    default_permissions: { pub: {}, sub: {} },
  });
  const serverConfig = [
    `operator: ${operatorJwt}`,
    `system_account: ${systemAccount.getPublicKey()}`,
    'resolver: MEMORY',
    'resolver_preload: {',
    `  ${account.getPublicKey()}: ${accountJwt}`,
    `  ${systemAccount.getPublicKey()}: ${systemAccountJwt}`,
    '}',
    '',
  ].join('\n');
  return {
    operator,
    operatorJwt,
    account,
    accountJwt,
    systemAccount,
    systemAccountJwt,
    serverConfig,
    userJwt: (user, issuer = account) =>
      signJwt(issuer, user.getPublicKey(), 'tributary-test-user', {
        type: 'user',
        pub: {},
        sub: {},
        subs: -1,
        data: -1,
        payload: -1,
      }),
  };
}

/** The text of a `.creds` file: the user JWT and the user's NKey seed. */
export function credsFileText(jwt: string, user: KeyPair): string {
  const seed = new TextDecoder().decode(user.getSeed());
  return [
    '-----BEGIN NATS USER JWT-----',
    jwt,
    '------END NATS USER JWT------',
    '',
    '************************* IMPORTANT *************************',
    'NKEY Seed printed below can be used to sign and prove identity.',
    'NKEYs are sensitive and should be treated as secrets.',
    '',
    '-----BEGIN USER NKEY SEED-----',
    seed,
    '------END USER NKEY SEED------',
    '',
    '*************************************************************',
    '',
  ].join('\n');
}

export { createTlsFiles, type TlsFiles } from './test-ca.js';
