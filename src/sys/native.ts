/** Finds the native helper's prebuild for this platform and binds it through koffi, if there is one. */
import koffi from 'koffi';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { onFirstUse } from './once.js';
import { platform } from './platform.js';

/** The interface version this code expects of the C side (evd_version). */
const VERSION = 1;

/** The native helper's functions, as the backends call them. */
export interface Native {
  /** src/native/evdispatch.c: re-arms n registrations, then polls; the count, or -errno. */
  readonly epollRearmPoll: (
    epfd: number,
    n: number,
    fds: Int32Array,
    interests: Int32Array,
    keys: Float64Array,
    errors: Int32Array,
    out: Uint32Array,
    max: number,
  ) => number;
}

/** prebuildify's layout: prebuilds/<platform>-<arch>/evdispatch.node at the package root. */
function prebuildPath(): string {
  // This file runs as build/src/sys/native.js.
  return fileURLToPath(new URL(`../../../prebuilds/${platform.os}-${platform.arch}/evdispatch.node`, import.meta.url));
}

function load(): Native | undefined {
  if (process.env['EVDISPATCH_NATIVE'] === '0' || !platform.nativeHelper) return undefined;
  const path = prebuildPath();
  if (!existsSync(path)) return undefined;
  try {
    const lib = koffi.load(path);
    const version = (lib.func('int evd_version(void)') as () => number)();
    if (version !== VERSION) return undefined;
    return {
      epollRearmPoll: lib.func(
        'int evd_epoll_rearm_poll(int epfd, int n, int32_t *fds, int32_t *interests, double *keys, int32_t *errors, void *out, int max)',
      ) as Native['epollRearmPoll'],
    };
  } catch {
    // A prebuild this system cannot load (another C library, say musl): the TypeScript path
    // does the same work, so the helper is simply not used.
    return undefined;
  }
}

/**
 * The native helper, loaded once per thread on first use, or undefined: no prebuild for this
 * platform, an older one, or EVDISPATCH_NATIVE=0. Everything it does, the TypeScript backends
 * also do.
 */
export const nativeHelper: () => Native | undefined = onFirstUse(load);
