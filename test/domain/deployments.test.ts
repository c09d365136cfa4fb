import { describe, expect, it } from 'vitest';
import { canaryStepPlan, canaryStepTarget, parseDeploymentOptions } from '../../src/domain/deployments.ts';

/** Upstream's DeploymentModel#canary_step_plan and DeploymentCreateMessage option checks. */
describe('canaryStepPlan', () => {
  it('keeps every original instance beside one canary when there are no steps', () => {
    expect(canaryStepPlan(4, null, null)).toEqual([{ canary: 1, original: 4 }]);
  });

  it('keeps instances − canary + 1 on the original side at each step, and none at 100%', () => {
    expect(canaryStepPlan(4, null, [{ instance_weight: 25 }, { instance_weight: 50 }, { instance_weight: 100 }])).toEqual([
      { canary: 1, original: 4 },
      { canary: 2, original: 3 },
      { canary: 4, original: 0 },
    ]);
  });

  it('rounds each weight and runs at least one canary', () => {
    expect(canaryStepPlan(10, null, [{ instance_weight: 1 }, { instance_weight: 15 }, { instance_weight: 99 }])).toEqual([
      { canary: 1, original: 10 },
      { canary: 2, original: 9 },
      { canary: 10, original: 1 },
    ]);
  });

  it('plans from web_instances only when it is smaller than the original count', () => {
    expect(canaryStepPlan(10, 4, [{ instance_weight: 50 }])).toEqual([{ canary: 2, original: 3 }]);
    expect(canaryStepPlan(2, 6, [{ instance_weight: 50 }])).toEqual([{ canary: 1, original: 2 }]);
  });

  it('answers the last step for a step past the end', () => {
    expect(canaryStepTarget(4, null, [{ instance_weight: 50 }], 3)).toEqual({ canary: 2, original: 3 });
  });
});

describe('parseDeploymentOptions', () => {
  it('treats the cf CLI explicit nulls as unset', () => {
    const errors: string[] = [];
    const options = parseDeploymentOptions(
      { max_in_flight: null, web_instances: null, memory_in_mb: null, disk_in_mb: null, log_rate_limit_in_bytes_per_second: null, canary: null },
      'rolling',
      errors,
    );
    expect(errors).toEqual([]);
    expect(options).toEqual({ maxInFlight: 1, webInstances: null, memoryInMb: null, diskInMb: null, logRateLimit: null, canarySteps: null });
  });

  it('reports every problem in upstream order', () => {
    const errors: string[] = [];
    parseDeploymentOptions({ surge: 1, web_instances: 'x', max_in_flight: 0 }, 'rolling', errors);
    expect(errors).toEqual(['Options has unsupported key(s): surge', 'Web instances is not a number', 'Max in flight must be an integer greater than 0']);
  });
});
