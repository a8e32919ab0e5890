/** The behavioural scenarios against every backend this machine can run. */
import { describe, it } from 'vitest';
import { availableBackends } from '../src/backends/select.js';
import { scenarios } from './scenarios/all.js';

// epoll here; kqueue too when EVDISPATCH_KQUEUE_LIB names a libkqueue. IOCP runs the same list
// under Wine: test/windows/run.ts.
for (const backend of availableBackends()) {
  describe(backend, () => {
    for (const s of scenarios) it(s.name, () => s.run({ backend }));
  });
}
