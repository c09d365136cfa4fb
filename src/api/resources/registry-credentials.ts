import { CreateRegistryCredentialSchema, UpdateRegistryCredentialSchema } from '../../domain/registry-credentials.ts';
import * as credentials from '../../services/registry-credentials.ts';
import type { SecretBox } from '../../store/secret-box.ts';
import { readJson } from '../cf/body.ts';
import { listParams, queryOf, renderList, serviceCtx as ctxOf } from '../cf/respond.ts';
import type { Api, AppDeps } from '../context.ts';
import { presentRegistryCredential } from '../presenters/registry-credential.ts';

/** Registry credentials, a Kiln extension of the V3 API (docs/kiln-openapi.json; see services/registry-credentials.ts). */
export function registerRegistryCredentials(app: Api, deps: AppDeps): void {
  const box = (): SecretBox => {
    if (!deps.secrets) throw new Error('registry credentials need a SecretBox (AppDeps.secrets)');
    return deps.secrets;
  };

  app.get('/v3/registry_credentials', async (c) => {
    const params = listParams(c, credentials.REGISTRY_CREDENTIAL_LIST);
    const page = await credentials.listRegistryCredentials(ctxOf(c, deps), params);
    return renderList(c, deps, page, params, (r, m) => presentRegistryCredential(r, m, c.get('linker')), { resourceType: 'registry_credentials' });
  });

  app.post('/v3/registry_credentials', async (c) => {
    queryOf(c);
    const input = await readJson(c, CreateRegistryCredentialSchema);
    const { credential, metadata } = await credentials.createRegistryCredential(ctxOf(c, deps), box(), input);
    return c.json(presentRegistryCredential(credential, metadata, c.var.linker), 201);
  });

  app.get('/v3/registry_credentials/:guid', async (c) => {
    queryOf(c);
    const { credential, metadata } = await credentials.getRegistryCredential(ctxOf(c, deps), c.req.param('guid'));
    return c.json(presentRegistryCredential(credential, metadata, c.var.linker));
  });

  app.patch('/v3/registry_credentials/:guid', async (c) => {
    queryOf(c);
    const input = await readJson(c, UpdateRegistryCredentialSchema);
    const { credential, metadata } = await credentials.updateRegistryCredential(ctxOf(c, deps), box(), c.req.param('guid'), input);
    return c.json(presentRegistryCredential(credential, metadata, c.var.linker));
  });

  app.delete('/v3/registry_credentials/:guid', async (c) => {
    queryOf(c);
    await credentials.deleteRegistryCredential(ctxOf(c, deps), c.req.param('guid'));
    return c.body(null, 204);
  });
}
