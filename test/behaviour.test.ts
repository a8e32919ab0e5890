/** The behavioural scenarios against every backend this machine can run. */
import { describe, it } from 'vitest';
import type { BackendKind } from '../src/index.js';
import { dispatchScenarios } from './scenarios/dispatch.js';
import { forceScenarios } from './scenarios/force.js';
import { lifecycleScenarios } from './scenarios/lifecycle.js';
import { strictScenarios } from './scenarios/strict.js';
import { threadScenarios } from './scenarios/threads.js';

const scenarios = [...dispatchScenarios, ...forceScenarios, ...lifecycleScenarios, ...strictScenarios, ...threadScenarios];

const backends: BackendKind[] = process.platform === 'linux' ? ['epoll'] : [];

for (const backend of backends) {
  describe(backend, () => {
    for (const s of scenarios) it(s.name, () => s.run({ backend }));
  });
}
