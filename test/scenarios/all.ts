/**
 * Every behavioural scenario, in the order the runners take them: vitest on Linux
 * (test/behaviour.test.ts) and the plain runner under node.exe (test/windows/run.ts) import this
 * one list, so both runs have the same names.
 */
import { batchScenarios } from './batch.js';
import { deadThreadScenarios } from './dead-threads.js';
import { edgeScenarios } from './edge.js';
import { deadlineScenarios } from './deadlines.js';
import { dispatchScenarios } from './dispatch.js';
import { forceScenarios } from './force.js';
import { lifecycleScenarios } from './lifecycle.js';
import { loopScenarios } from './loop.js';
import type { Scenario } from './scenario.js';
import { stateScenarios } from './state.js';
import { strictScenarios } from './strict.js';
import { stressScenarios } from './stress.js';
import { tcpScenarios } from './tcp.js';
import { threadScenarios } from './threads.js';

export const scenarios: readonly Scenario[] = [
  ...dispatchScenarios,
  ...forceScenarios,
  ...lifecycleScenarios,
  ...strictScenarios,
  ...threadScenarios,
  ...deadThreadScenarios,
  ...deadlineScenarios,
  ...stateScenarios,
  ...loopScenarios,
  ...batchScenarios,
  ...edgeScenarios,
  ...tcpScenarios,
  ...stressScenarios,
];
