/** A throwaway certificate authority for the TLS tests (openssl, PEM files). */
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface TlsFiles {
  readonly caCert: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCert: string;
  readonly clientKey: string;
}

async function openssl(dir: string, args: string[]): Promise<void> {
  try {
    await run('openssl', args, { cwd: dir });
  } catch (error) {
    const e = error as { message: string; stderr?: string };
    throw new Error(`openssl ${args.join(' ')} failed: ${e.stderr ?? e.message}`);
  }
}

/**
 * A test CA (EC P-256), a server certificate for 127.0.0.1 and localhost, and a client certificate,
 * as PEM files in `dir`. `serverUse` is the server certificate's extended key usage (a Kafka broker
 * also connects to itself, so it needs `serverAuth,clientAuth`).
 */
export async function createTlsFiles(dir: string, serverUse = 'serverAuth'): Promise<TlsFiles> {
  mkdirSync(dir, { recursive: true });
  const file = (name: string): string => path.join(dir, name);
  const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await openssl(dir, [
    'req',
    '-x509',
    ...ecKey,
    '-keyout',
    file('ca-key.pem'),
    '-out',
    file('ca.pem'),
    '-days',
    '2',
    '-subj',
    '/CN=Tributary test CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  const issue = async (name: string, subject: string, extensions: string): Promise<void> => {
    writeFileSync(file(`${name}.ext`), extensions, 'utf8');
    await openssl(dir, [
      'req',
      ...ecKey,
      '-keyout',
      file(`${name}-key.pem`),
      '-out',
      file(`${name}.csr`),
      '-subj',
      subject,
    ]);
    await openssl(dir, [
      'x509',
      '-req',
      '-in',
      file(`${name}.csr`),
      '-CA',
      file('ca.pem'),
      '-CAkey',
      file('ca-key.pem'),
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      file(`${name}.ext`),
      '-out',
      file(`${name}.pem`),
    ]);
  };
  await issue(
    'server',
    '/CN=127.0.0.1',
    `subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=${serverUse}\n`,
  );
  await issue('client', '/CN=tributary-test-client', 'extendedKeyUsage=clientAuth\n');
  return {
    caCert: file('ca.pem'),
    serverCert: file('server.pem'),
    serverKey: file('server-key.pem'),
    clientCert: file('client.pem'),
    clientKey: file('client-key.pem'),
  };
}
