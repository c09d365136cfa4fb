import { z } from 'zod';
import { SERVICE_BROKER_LIST } from '../../domain/services.ts';
import * as brokers from '../../services/service-brokers.ts';
import type { Api, AppDeps } from '../context.ts';
import { readJson } from '../cf/body.ts';
import { acceptedJob, listParams, queryOf, renderList, serviceCtx as ctxOf } from '../cf/respond.ts';
import { presentServiceBroker } from '../presenters/service-broker.ts';

const AnyBody = z.record(z.string(), z.unknown());

export function registerServiceBrokers(app: Api, deps: AppDeps): void {
  app.get('/v3/service_brokers', async (c) => {
    const params = listParams(c, SERVICE_BROKER_LIST);
    const page = await brokers.listServiceBrokers(ctxOf(c, deps), params);
    return renderList(c, deps, page, params, (b, m) => presentServiceBroker(b, m, c.get('linker')), { resourceType: 'service_brokers' });
  });

  app.post('/v3/service_brokers', async (c) => {
    const body = await readJson(c, AnyBody);
    const { jobGuid } = await brokers.createServiceBroker(ctxOf(c, deps), body);
    return acceptedJob(c, jobGuid);
  });

  app.get('/v3/service_brokers/:guid', async (c) => {
    queryOf(c);
    const b = await brokers.getServiceBroker(ctxOf(c, deps), c.req.param('guid'));
    return c.json(presentServiceBroker(b, await brokers.brokerMetadata(deps, b.guid), c.get('linker')));
  });

  app.patch('/v3/service_brokers/:guid', async (c) => {
    const body = await readJson(c, AnyBody);
    const r = await brokers.updateServiceBroker(ctxOf(c, deps), c.req.param('guid'), body);
    if ('jobGuid' in r) return acceptedJob(c, r.jobGuid);
    return c.json(presentServiceBroker(r.broker, r.metadata, c.get('linker')));
  });

  app.delete('/v3/service_brokers/:guid', async (c) => {
    queryOf(c);
    const { jobGuid } = await brokers.deleteServiceBroker(ctxOf(c, deps), c.req.param('guid'));
    return acceptedJob(c, jobGuid);
  });
}
