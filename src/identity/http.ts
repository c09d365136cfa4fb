import { Hono, type Context } from 'hono';
import { z } from 'zod';
import { KilnError } from '../domain/errors.ts';
import { containsNul } from '../domain/nul.ts';
import type { Principal } from '../domain/principal.ts';
import { requestOrigin } from '../api/cf/links.ts';
import { IdentityError, type IdentityService } from './identity-service.ts';

/**
 * The UAA endpoints the cf CLI and UAA clients call, served on Kiln's own origin (the root document's `login`
 * and `uaa` links point here). Errors use UAA's `{error, error_description}` shape, not CF's.
 */
interface IdentityEnv {
  Variables: { caller: Principal };
}

const UAA_VERSION = '77.0.0';

const NewUserBody = z.object({
  userName: z.string().trim().min(1).max(255),
  password: z.string().min(1).max(255).optional(),
  origin: z.string().trim().min(1).max(36).optional(),
  emails: z.array(z.object({ value: z.string().max(255), primary: z.boolean().optional() })).optional(),
  name: z.object({ givenName: z.string().max(255).optional(), familyName: z.string().max(255).optional() }).optional(),
  active: z.boolean().optional(),
});

const PasswordBody = z.object({ password: z.string().min(1).max(255), oldPassword: z.string().optional() });

const NewClientBody = z.object({
  client_id: z.string().trim().min(1).max(255).regex(/^[\w.@-]+$/, 'may contain letters, digits, . _ - @'),
  client_secret: z.string().max(255).optional(),
  scope: z.array(z.string()).optional(),
  authorities: z.array(z.string()).optional(),
  authorized_grant_types: z.array(z.enum(['client_credentials', 'password', 'refresh_token'])).min(1),
});

function problem(c: Context, err: IdentityError) {
  return c.json({ error: err.error, error_description: err.description }, err.status);
}

async function jsonBody<T>(c: Context, schema: z.ZodType<T>): Promise<T> {
  let raw: unknown;
  try {
    raw = await c.req.json();
  } catch {
    throw new IdentityError(400, 'invalid_request', 'The request body is not valid JSON.');
  }
  if (containsNul(raw)) throw new IdentityError(400, 'invalid_request', 'Strings may not contain NUL characters.');
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    throw new IdentityError(400, 'invalid_scim_resource', parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; '));
  }
  return parsed.data;
}

/** Reads client credentials from HTTP Basic auth or, as UAA also allows, from the form. */
function clientCredentials(c: Context, form: Record<string, string>): { id: string; secret: string } {
  const basic = c.req.header('authorization')?.match(/^basic\s+(\S+)$/i);
  if (basic) {
    const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) throw new IdentityError(401, 'invalid_client', 'Bad client credentials');
    return { id: decodeURIComponent(decoded.slice(0, colon)), secret: decodeURIComponent(decoded.slice(colon + 1)) };
  }
  if (form.client_id) return { id: form.client_id, secret: form.client_secret ?? '' };
  throw new IdentityError(401, 'unauthorized', 'Full authentication is required to access this resource');
}

function loginHintOrigin(hint: string | undefined): string | undefined {
  if (!hint) return undefined;
  try {
    const parsed = JSON.parse(hint) as { origin?: unknown };
    return typeof parsed.origin === 'string' ? parsed.origin : undefined;
  } catch {
    throw new IdentityError(400, 'invalid_request', 'login_hint must be JSON like {"origin":"uaa"}');
  }
}

export function identityRoutes(identity: IdentityService): Hono {
  const app = new Hono<IdentityEnv>();

  app.onError((err, c) => {
    if (err instanceof IdentityError) return problem(c, err);
    throw err;
  });

  const info = (c: Context) => {
    const origin = requestOrigin(c);
    return c.json({
      app: { version: UAA_VERSION },
      links: { uaa: origin, login: origin, passwd: '/forgot_password', register: '/create_account' },
      zone_name: 'uaa',
      entityID: 'kiln',
      commit_id: 'kiln',
      timestamp: new Date().toISOString(),
      idpDefinitions: {},
      // Exactly these two keys: the cf CLI sends -u/-p only for them and asks interactively for any others.
      prompts: { username: ['text', 'Email'], password: ['password', 'Password'] },
    });
  };
  app.get('/login', info);
  app.get('/info', info);

  app.post('/oauth/token', async (c) => {
    const type = c.req.header('content-type') ?? '';
    const body = type.includes('application/x-www-form-urlencoded') || type.includes('multipart/form-data') ? await c.req.parseBody() : {};
    // UAA also takes the parameters from the query string.
    const form: Record<string, string> = { ...c.req.query() };
    for (const [k, v] of Object.entries(body)) if (typeof v === 'string') form[k] = v;
    if (containsNul(form)) throw new IdentityError(400, 'invalid_request', 'Parameters may not contain NUL characters.');
    const issuer = `${requestOrigin(c)}/oauth/token`;
    const creds = clientCredentials(c, form);
    const client = await identity.authenticateClient(creds.id, creds.secret);
    let tokens;
    switch (form.grant_type) {
      case 'password': {
        if (!form.username || form.password === undefined) throw new IdentityError(401, 'unauthorized', 'Bad credentials');
        const origin = loginHintOrigin(form.login_hint);
        tokens = await identity.passwordGrant(form.username, form.password, { client, issuer, ...(origin ? { origin } : {}) });
        break;
      }
      case 'refresh_token':
        if (!form.refresh_token) throw new IdentityError(400, 'invalid_request', 'Missing refresh_token');
        tokens = await identity.refreshGrant(form.refresh_token, { client, issuer });
        break;
      case 'client_credentials':
        tokens = await identity.clientCredentialsGrant(client, { issuer });
        break;
      case undefined:
        throw new IdentityError(400, 'invalid_request', 'Missing grant type');
      default:
        throw new IdentityError(400, 'unsupported_grant_type', `Unsupported grant type: ${form.grant_type}`);
    }
    c.header('Cache-Control', 'no-store');
    return c.json(tokens);
  });

  app.get('/token_keys', (c) => c.json({ keys: [{ ...identity.publicKey.jwk, value: identity.publicKey.pem }] }));
  app.get('/token_key', (c) => c.json({ ...identity.publicKey.jwk, value: identity.publicKey.pem }));
  app.get('/.well-known/openid-configuration', (c) => {
    const origin = requestOrigin(c);
    return c.json({
      issuer: `${origin}/oauth/token`,
      token_endpoint: `${origin}/oauth/token`,
      jwks_uri: `${origin}/token_keys`,
      userinfo_endpoint: `${origin}/userinfo`,
      grant_types_supported: ['password', 'refresh_token', 'client_credentials'],
      id_token_signing_alg_values_supported: ['RS256'],
      token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
    });
  });

  // Everything below needs a bearer token of ours (or the external issuer's).
  const bearer = async (c: Context<IdentityEnv>, next: () => Promise<void>) => {
    const m = c.req.header('authorization')?.match(/^bearer\s+(\S+)\s*$/i);
    if (!m) throw new IdentityError(401, 'unauthorized', 'Full authentication is required to access this resource');
    try {
      c.set('caller', await identity.verifyAccessToken(m[1]!));
    } catch (err) {
      if (err instanceof KilnError) throw new IdentityError(401, 'invalid_token', 'The token is invalid or has expired.');
      throw err;
    }
    await next();
  };
  const need = (c: Context<IdentityEnv>, ...scopes: string[]) => {
    const caller = c.get('caller');
    if (!scopes.some((s) => caller.scopes.has(s))) throw new IdentityError(403, 'insufficient_scope', `Insufficient scope for this resource; one of: ${scopes.join(', ')}`);
  };
  const SCIM_WRITE = ['scim.write', 'scim.create', 'uaa.admin'];
  const SCIM_READ = ['scim.read', 'scim.write', 'uaa.admin', 'cloud_controller.admin'];
  for (const p of ['/Users', '/Users/*', '/userinfo', '/oauth/clients', '/oauth/clients/*']) app.use(p, bearer);

  app.get('/userinfo', async (c) => {
    const caller = c.get('caller');
    if (caller.isClient) throw new IdentityError(403, 'insufficient_scope', 'A user token is required');
    const u = await identity.getUser(caller.guid);
    return c.json({
      user_id: u.id,
      sub: u.id,
      user_name: u.userName,
      given_name: u.name.givenName ?? null,
      family_name: u.name.familyName ?? null,
      email: u.emails[0]?.value ?? null,
      origin: u.origin,
      email_verified: true,
      previous_logon_time: null,
    });
  });

  app.post('/Users', async (c) => {
    need(c, ...SCIM_WRITE);
    const b = await jsonBody(c, NewUserBody);
    const user = await identity.createUser({
      userName: b.userName,
      password: b.password,
      origin: b.origin,
      email: b.emails?.find((e) => e.primary)?.value ?? b.emails?.[0]?.value,
      givenName: b.name?.givenName,
      familyName: b.name?.familyName,
      active: b.active,
    });
    return c.json(user, 201);
  });

  app.get('/Users', async (c) => {
    need(c, ...SCIM_READ);
    const num = (v: string | undefined) => (v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined);
    const q = c.req.query();
    const startIndex = num(q.startIndex);
    const count = num(q.count);
    return c.json(
      await identity.listUsers({ filter: q.filter, ...(startIndex !== undefined ? { startIndex } : {}), ...(count !== undefined ? { count } : {}) }),
    );
  });

  app.get('/Users/:id', async (c) => {
    const id = c.req.param('id');
    if (c.get('caller').guid !== id) need(c, ...SCIM_READ);
    return c.json(await identity.getUser(id));
  });

  app.delete('/Users/:id', async (c) => {
    need(c, ...SCIM_WRITE.filter((s) => s !== 'scim.create'));
    return c.json(await identity.deleteUser(c.req.param('id')));
  });

  app.put('/Users/:id/password', async (c) => {
    const id = c.req.param('id');
    const caller = c.get('caller');
    const isSelf = caller.guid === id;
    const byAdmin = ['scim.write', 'uaa.admin'].some((s) => caller.scopes.has(s));
    if (!isSelf && !byAdmin) throw new IdentityError(403, 'insufficient_scope', 'Insufficient scope for this resource');
    const b = await jsonBody(c, PasswordBody);
    // Changing one's own password always needs the old one, admin or not.
    await identity.changePassword(id, b, byAdmin && !isSelf);
    return c.json({ status: 'ok', message: 'password updated' });
  });

  app.post('/oauth/clients', async (c) => {
    need(c, 'clients.write', 'clients.admin', 'uaa.admin');
    const b = await jsonBody(c, NewClientBody);
    const client = await identity.createClient({
      clientId: b.client_id,
      secret: b.client_secret ?? '',
      scopes: b.scope ?? ['uaa.none'],
      authorities: b.authorities ?? ['uaa.none'],
      grantTypes: b.authorized_grant_types,
    });
    return c.json(client, 201);
  });

  app.get('/oauth/clients/:id', async (c) => {
    const id = c.req.param('id');
    if (c.get('caller').guid !== id) need(c, 'clients.read', 'clients.write', 'clients.admin', 'uaa.admin');
    return c.json(await identity.getClient(id));
  });

  app.delete('/oauth/clients/:id', async (c) => {
    need(c, 'clients.write', 'clients.admin', 'uaa.admin');
    return c.json(await identity.deleteClient(c.req.param('id')));
  });

  return app as unknown as Hono;
}
