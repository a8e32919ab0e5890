/**
 * Preloaded (`node --import`) into evdispatch's echo server by bench/echo.ts: when the
 * benchmark's end of the server's stdin closes (the benchmark has exited, however it ended), the
 * server gets SIGTERM, its own graceful stop; if that takes more than 5 s, it exits. Only the
 * main thread watches; the server's own code is untouched.
 */
import { isMainThread } from 'node:worker_threads';

if (isMainThread) {
  const stop = (): void => {
    process.kill(process.pid, 'SIGTERM');
    setTimeout(() => process.exit(1), 5000).unref();
  };
  // Paused stdin keeps nothing alive; resumed, it is one more idle handle on the main thread.
  process.stdin.once('end', stop).once('error', stop).resume();
  process.stdin.unref?.();
}
