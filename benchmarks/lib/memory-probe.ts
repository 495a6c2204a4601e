/**
 * Preloaded into the server under test (`node --expose-gc --import <this file> dist/cli.js serve`);
 * it changes nothing in the server but answers two signals with one JSON line on stderr:
 *
 * - SIGUSR2: runs a full garbage collection and writes `process.memoryUsage()`, so the harness
 *   reads the memory that is live, not garbage not yet collected. (A GC does not give committed
 *   heap pages back: V8's memory reducer does that on its own after some idle seconds, which the
 *   memory scenario waits for.)
 * - SIGWINCH (ignored by Node otherwise): writes the event loop's delay (how late timers ran: how
 *   long the loop was blocked) and the GC pauses since the previous SIGWINCH, then starts again.
 *   The generator sends it at the start and at the end of a measured window.
 */
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';

process.on('SIGUSR2', () => {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  gc?.();
  const usage = process.memoryUsage();
  process.stderr.write(
    `${JSON.stringify({ benchMemory: { ...usage, collected: gc !== undefined } })}\n`,
  );
});

// A 5 ms timer: a blocked loop shows as one late timer, whatever its length; 200 wakeups a second
// cost the server little. The histogram holds the intervals between firings: minus the resolution,
// how late the loop was.
const RESOLUTION_MS = 5;
const delay = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
delay.enable();
let gcCount = 0;
let gcTotalMs = 0;
let gcMaxMs = 0;
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    gcCount++;
    gcTotalMs += entry.duration;
    gcMaxMs = Math.max(gcMaxMs, entry.duration);
  }
}).observe({ entryTypes: ['gc'] });

process.on('SIGWINCH', () => {
  const ms = (ns: number): number => Math.max(0, ns / 1e6 - RESOLUTION_MS);
  process.stderr.write(
    `${JSON.stringify({
      benchLoop: {
        delayP50Ms: ms(delay.percentile(50)),
        delayP99Ms: ms(delay.percentile(99)),
        delayMaxMs: ms(delay.max),
        gcCount,
        gcTotalMs,
        gcMaxMs,
      },
    })}\n`,
  );
  delay.reset();
  gcCount = 0;
  gcTotalMs = 0;
  gcMaxMs = 0;
});
