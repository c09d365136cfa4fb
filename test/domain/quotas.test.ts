import { describe, expect, it } from 'vitest';
import {
  allowsAnotherReservedPort,
  DEFAULT_LIMITS,
  organizationQuotaError,
  privateDomainQuotaError,
  processQuotaErrors,
  reservedPortQuotaError,
  routeQuotaError,
  serviceInstanceQuotaError,
  serviceKeyQuotaError,
  spaceQuotaError,
  taskQuotaErrors,
  unlimitedLogRateConflict,
  type AppUsage,
  type QuotaLimits,
} from '../../src/domain/quotas.ts';

const limits = (l: Partial<QuotaLimits>): QuotaLimits => ({ ...DEFAULT_LIMITS, ...l });
const idle: AppUsage = { memoryInMb: 0, instances: 0, logRate: 0, activeTasks: 0 };
const scope = (quota: QuotaLimits | null, usage: Partial<AppUsage> = {}, name = 'n') => ({ quota, usage: { ...idle, ...usage }, name });

describe('quota limits', () => {
  it('keeps reserved ports within routes (and the org quota for spaces)', () => {
    expect(organizationQuotaError({ total_routes: 2, total_reserved_ports: 3 })).toMatch(/^Total reserved ports/);
    expect(organizationQuotaError({ total_routes: null, total_reserved_ports: 3 })).toBeUndefined();
    expect(organizationQuotaError({ total_routes: 3, total_reserved_ports: null })).toBeUndefined();
    expect(spaceQuotaError({ total_routes: 5, total_reserved_ports: 2 }, { total_reserved_ports: 1 })).toMatch(/organization quota\.$/);
    expect(spaceQuotaError({ total_routes: 5, total_reserved_ports: 2 }, { total_reserved_ports: null })).toBeUndefined();
    expect(spaceQuotaError({ total_routes: 5, total_reserved_ports: 2 }, null)).toBeUndefined();
  });
});

describe('process and task enforcement', () => {
  const p = { started: true, instances: 2, memoryInMb: 512, logRate: 100 };

  it('passes stopped processes and unlimited quotas', () => {
    expect(processQuotaErrors({ ...p, started: false }, scope(limits({ total_memory_in_mb: 1 })), scope(null))).toEqual([]);
    expect(processQuotaErrors(p, scope(limits({})), scope(null))).toEqual([]);
  });

  it('reports every exceeded limit with upstream wording, space before org', () => {
    const org = scope(limits({ total_memory_in_mb: 1500, per_process_memory_in_mb: 256, total_instances: 2, log_rate_limit_in_bytes_per_second: 100 }), {
      memoryInMb: 600,
      instances: 1,
    });
    const space = scope(limits({ total_memory_in_mb: 1000 }), {}, 'dev');
    expect(processQuotaErrors(p, org, space)).toEqual([
      'memory space_quota_exceeded',
      'memory quota_exceeded',
      'memory instance_memory_limit_exceeded',
      'app_instance_limit app_instance_limit_exceeded',
      'log_rate_limit exceeds organization log rate quota',
    ]);
    expect(processQuotaErrors({ ...p, logRate: -1 }, scope(null), scope(limits({ log_rate_limit_in_bytes_per_second: 5 }), {}, 'dev'))).toEqual([
      "log_rate_limit cannot be unlimited in space 'dev'.",
    ]);
  });

  it('limits tasks by memory, per-process memory and active task count', () => {
    const org = scope(limits({ per_app_tasks: 2 }), { activeTasks: 2 });
    expect(taskQuotaErrors({ memoryInMb: 64, logRate: 1 }, org, scope(null))).toEqual(['app_task_limit quota exceeded']);
    const space = scope(limits({ total_memory_in_mb: 100, per_process_memory_in_mb: 50 }), { memoryInMb: 60 });
    expect(taskQuotaErrors({ memoryInMb: 64, logRate: 1 }, scope(null), space)).toEqual([
      'memory_in_mb exceeds space memory quota',
      'memory_in_mb exceeds space instance memory quota',
    ]);
  });
});

describe('routes, ports, domains and services', () => {
  it('checks routes and reserved ports, space first', () => {
    const q = limits({ total_routes: 2 });
    expect(routeQuotaError({ quota: q, name: 'o', routes: 2 }, { quota: null, name: 's', routes: 0 })).toBe("Routes quota exceeded for organization 'o'.");
    expect(routeQuotaError({ quota: q, name: 'o', routes: 2 }, { quota: q, name: 's', routes: 2 })).toBe("Routes quota exceeded for space 's'.");
    expect(routeQuotaError({ quota: q, name: 'o', routes: 1 }, { quota: null, name: 's', routes: 1 })).toBeUndefined();
    expect(allowsAnotherReservedPort({ total_reserved_ports: null, total_routes: 3 }, 3)).toBe(false);
    expect(allowsAnotherReservedPort({ total_reserved_ports: 0, total_routes: null }, 0)).toBe(false);
    expect(reservedPortQuotaError({ quota: limits({ total_reserved_ports: 1 }), name: 'o', ports: 1 }, { quota: null, name: 's', ports: 0 })).toBe(
      "Reserved route ports quota exceeded for organization 'o'.",
    );
  });

  it('checks private domains, service instances, paid plans and keys', () => {
    expect(privateDomainQuotaError({ quota: limits({ total_domains: 1 }), name: 'o', domains: 1 })).toBe(
      'The number of private domains exceeds the quota for organization "o"',
    );
    const noPaid = limits({ paid_services_allowed: false });
    expect(serviceInstanceQuotaError({ free: false }, { quota: noPaid, instances: 0 }, { quota: null, instances: 0 })).toBe('ServiceInstanceServicePlanNotAllowed');
    expect(serviceInstanceQuotaError({ free: true }, { quota: noPaid, instances: 0 }, { quota: null, instances: 0 })).toBeUndefined();
    expect(
      serviceInstanceQuotaError({ free: true }, { quota: limits({ total_service_instances: 1 }), instances: 1 }, { quota: limits({ total_service_instances: 0 }), instances: 0 }),
    ).toBe('ServiceInstanceSpaceQuotaExceeded');
    expect(serviceKeyQuotaError({ quota: limits({ total_service_keys: 0 }), keys: 0 }, { quota: null, keys: 0 })).toBe(
      "You have exceeded your organization's limit for service binding of type key.",
    );
  });

  it('words the unlimited-log-rate conflict like upstream', () => {
    expect(unlimitedLogRateConflict('org', [])).toBeUndefined();
    expect(unlimitedLogRateConflict('org', ['a'])).toBe(
      "Current usage exceeds new quota values. This quota is applied to org 'a' which contains apps running with an unlimited log rate limit.",
    );
    expect(unlimitedLogRateConflict('space', ['a', 'b', 'c'])).toBe(
      "Current usage exceeds new quota values. This quota is applied to spaces 'a', 'b' and 1 other spaces which contain apps running with an unlimited log rate limit.",
    );
  });
});
