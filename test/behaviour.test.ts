/** The behavioural scenarios against every backend this machine can run. */
import { describe, it } from 'vitest';
import { availableBackends, Mode } from '../src/index.js';
import { scenarios } from './scenarios/all.js';

/**
 * What libkqueue (kqueue on Linux, through EVDISPATCH_KQUEUE_LIB) cannot do that native kqueue
 * does, by scenario: skipped there, with the reason in the test's name.
 */
const LIBKQUEUE_SKIP: ReadonlyMap<string, string> = new Map([
  [
    'tcp_refused_connect_is_an_error_event',
    'needs native kqueue: libkqueue reads SO_ERROR itself to fill fflags, which clears it before socketError can',
  ],
  [
    'edge_data_and_the_peers_shutdown_in_one_delivery_say_hangup',
    'needs native kqueue: libkqueue reports no EV_EOF while data is unread, and under EV_CLEAR nothing follows once it is read',
  ],
]);

/**
 * libkqueue reaps as many epoll events as the kevent list has room for, and an fd with both
 * filters makes two kevents of one epoll event: what no longer fits is dropped (copyout's
 * "no more available kevent slots"). A level comes back; an EV_CLEAR edge is lost. So EDGE,
 * which registers both filters with EV_CLEAR, loses events there when more fds are ready at once
 * than half a wait's room: these scenarios make that happen.
 */
const LIBKQUEUE_EDGE_DROPS = 'needs native kqueue: libkqueue drops the EV_CLEAR edges of the fds past half the event list';
const LIBKQUEUE_EDGE_SKIP: ReadonlyMap<string, string> = new Map([
  ...LIBKQUEUE_SKIP,
  ['many_registrations', LIBKQUEUE_EDGE_DROPS],
  ['stress_two_threads_128_sockets_20000_deliveries', LIBKQUEUE_EDGE_DROPS],
  ['stress_two_threads_128_sockets_batched_rearms', LIBKQUEUE_EDGE_DROPS],
]);

// epoll here; kqueue too when EVDISPATCH_KQUEUE_LIB names a libkqueue. IOCP runs the same list
// under Wine: test/windows/run.ts. Each backend runs it in DISPATCH (the default mode, under the
// backend's own name, which .ci/run compares with the Windows run's) and again in EDGE.
for (const mode of [Mode.DISPATCH, Mode.EDGE]) {
  for (const backend of availableBackends()) {
    const libkqueue = backend === 'kqueue' && process.platform === 'linux';
    const skips = libkqueue ? (mode === Mode.EDGE ? LIBKQUEUE_EDGE_SKIP : LIBKQUEUE_SKIP) : new Map<string, string>();
    describe(mode === Mode.EDGE ? `${backend} EDGE` : backend, () => {
      for (const s of scenarios) {
        const skip = skips.get(s.name);
        if (skip === undefined) it(s.name, () => s.run({ backend, mode }));
        else it.skip(`${s.name} [skipped: ${skip}]`, () => s.run({ backend, mode }));
      }
    });
  }
}

// The reference path too: no native helper, and the opening thread's re-arms applied in rearm
// itself (above: batched, through the native helper where its prebuild is present).
if (availableBackends().includes('epoll')) {
  describe('epoll with the native helper off and re-arms at once', () => {
    for (const s of scenarios) it(s.name, () => s.run({ backend: 'epoll', native: false, batchRearms: false }));
  });
}
