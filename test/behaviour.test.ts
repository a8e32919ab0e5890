/** The behavioural scenarios against every backend this machine can run. */
import { describe, it } from 'vitest';
import { availableBackends } from '../src/backends/select.js';
import { dispatchScenarios } from './scenarios/dispatch.js';
import { forceScenarios } from './scenarios/force.js';
import { lifecycleScenarios } from './scenarios/lifecycle.js';
import { strictScenarios } from './scenarios/strict.js';
import { threadScenarios } from './scenarios/threads.js';

const scenarios = [...dispatchScenarios, ...forceScenarios, ...lifecycleScenarios, ...strictScenarios, ...threadScenarios];

// epoll here; kqueue too when EVDISPATCH_KQUEUE_LIB names a libkqueue.
for (const backend of availableBackends()) {
  describe(backend, () => {
    for (const s of scenarios) it(s.name, () => s.run({ backend }));
  });
}
