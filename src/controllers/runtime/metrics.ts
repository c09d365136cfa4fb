import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ReconcileOutcome } from './outcomes.ts';

/** Prometheus metrics of the controllers (one registry per manager, so tests can run several). */
export class ControllerMetrics {
  readonly registry = new Registry();
  private readonly total: Counter<'controller' | 'result'>;
  private readonly duration: Histogram<'controller'>;
  readonly depth: Gauge<'controller'>;
  readonly feedLag: Gauge;

  constructor() {
    this.total = new Counter({
      name: 'kiln_reconcile_total',
      help: 'Reconciles by controller and result (success, requeue, not_ready, terminal_error, error)',
      labelNames: ['controller', 'result'],
      registers: [this.registry],
    });
    this.duration = new Histogram({
      name: 'kiln_reconcile_duration_seconds',
      help: 'Time one reconcile took, by controller',
      labelNames: ['controller'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120],
      registers: [this.registry],
    });
    this.depth = new Gauge({
      name: 'kiln_workqueue_depth',
      help: 'Keys waiting or being reconciled, by controller',
      labelNames: ['controller'],
      registers: [this.registry],
    });
    this.feedLag = new Gauge({
      name: 'kiln_change_feed_lag_seconds',
      help: 'Age of the newest change-feed entry when the controllers read it (0 when caught up)',
      registers: [this.registry],
    });
  }

  observe(controller: string, result: ReconcileOutcome, seconds: number): void {
    this.total.inc({ controller, result });
    this.duration.observe({ controller }, seconds);
  }
}
