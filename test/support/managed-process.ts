/**
 * The lifecycle a test drives on a real server it started itself (a private nats-server, a
 * private Kafka broker): stop, crash, stall, restart on the same data, close. Each server module
 * only says how to launch its process and what to remove at the end.
 */
import type { ChildProcess } from 'node:child_process';

/** A launched process, ready to serve. */
export interface Started {
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  /** What the process wrote so far. */
  output(): string;
}

export interface ManagedProcess {
  /** Whether the process is running now. */
  running(): boolean;
  /** What the current (or last) process wrote. */
  output(): string;
  /** SIGTERM (a clean shutdown) and wait for the exit; does nothing when not running. */
  stop(): Promise<void>;
  /** SIGKILL and wait for the exit (a crash); does nothing when not running. */
  kill(): Promise<void>;
  /** SIGSTOP: the process and its connections stay, and it answers nothing (a stall). */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
  /** Start again (same ports, configuration and data); resolves once it is ready. */
  restart(): Promise<void>;
  /** Stop, then `remove` what the process left. */
  close(): Promise<void>;
}

export interface ManageOptions {
  /** Names the process in errors. */
  readonly what: string;
  /** Starts the process again, resolving once it is ready. */
  readonly launch: () => Promise<Started>;
  /** Removes the process's files once it is closed. */
  readonly remove: () => void;
  /** A clean shutdown that takes longer than this becomes a SIGKILL (default 30 s). */
  readonly stopTimeoutMs?: number;
}

export function manageProcess(first: Started, options: ManageOptions): ManagedProcess {
  let current: Started | undefined = first;
  let paused = false;
  let lastOutput = '';
  const isRunning = (): boolean =>
    current !== undefined && current.child.exitCode === null && current.child.signalCode === null;

  const signal = async (name: NodeJS.Signals): Promise<void> => {
    if (current === undefined || !isRunning()) return;
    const { child, exited } = current;
    child.kill(name);
    // A stopped process only acts on the signal once it runs again.
    if (paused) child.kill('SIGCONT');
    paused = false;
    const timer =
      name === 'SIGTERM'
        ? setTimeout(() => child.kill('SIGKILL'), options.stopTimeoutMs ?? 30_000)
        : undefined;
    await exited;
    clearTimeout(timer);
  };
  const stall = (stop: boolean): void => {
    if (current === undefined || !isRunning()) throw new Error(`${options.what} is not running`);
    current.child.kill(stop ? 'SIGSTOP' : 'SIGCONT');
    paused = stop;
  };

  return {
    running: isRunning,
    output: () => current?.output() ?? lastOutput,
    stop: () => signal('SIGTERM'),
    kill: () => signal('SIGKILL'),
    pause: () => stall(true),
    resume: () => stall(false),
    restart: async () => {
      await signal('SIGTERM');
      lastOutput = current?.output() ?? '';
      current = undefined;
      current = await options.launch();
    },
    close: async () => {
      await signal('SIGTERM');
      options.remove();
    },
  };
}
