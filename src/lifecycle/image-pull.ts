/** Which credentials pull a docker image: the package's own, else the most specific registry credential (staging and running both need it). */
import { sql, type Kysely } from 'kysely';
import { registryOfImage, type RegistryScope } from '../domain/registry-credentials.ts';
import type { ImagePull } from '../runtime/runtime.ts';
import type { Database, Row } from '../store/schema.ts';
import type { SecretBox } from '../store/secret-box.ts';

const scopeOf = (row: Pick<Row<'registry_credentials'>, 'scope'>): RegistryScope => row.scope;

/** A credential opened for one image pull; `password` is the password or token. Never presented or logged. */
export interface ResolvedRegistryCredential {
  guid: string;
  scope: RegistryScope;
  host: string;
  username: string;
  password: string;
}

const SPECIFICITY: Record<RegistryScope, number> = { space: 0, organization: 1, foundation: 2 };

/**
 * The most specific credential for the registry `image` pulls from, as seen from a space: the space's own, else
 * its organization's, else the foundation's; undefined when none is stored for that host.
 */
export async function resolveRegistryCredential(
  db: Kysely<Database>,
  box: SecretBox,
  where: { image: string; spaceGuid: string; organizationGuid: string },
): Promise<ResolvedRegistryCredential | undefined> {
  const host = registryOfImage(where.image);
  const rows = await db
    .selectFrom('registry_credentials')
    .selectAll()
    .where('host', '=', host)
    .where((eb) =>
      eb.or([
        eb.and([eb('scope', '=', 'space'), eb('scope_guid', '=', where.spaceGuid)]),
        eb.and([eb('scope', '=', 'organization'), eb('scope_guid', '=', where.organizationGuid)]),
        eb.and([eb('scope', '=', 'foundation'), eb('scope_guid', '=', sql<string>`''`)]),
      ]),
    )
    .execute();
  const best = rows.sort((a, b) => SPECIFICITY[scopeOf(a)] - SPECIFICITY[scopeOf(b)])[0];
  if (!best) return undefined;
  return { guid: best.guid, scope: best.scope, host: best.host, username: best.username, password: box.open(best.secret_ciphertext, best.guid) };
}

/**
 * How to pull a docker package's image: with the package's own username and password when it has them (the
 * client named credentials), else with the most specific registry credential for the image's registry, else
 * anonymously.
 */
export async function dockerImagePull(
  db: Kysely<Database>,
  box: SecretBox | undefined,
  pkg: Pick<Row<'packages'>, 'docker_image' | 'docker_username' | 'docker_password'>,
  where: { spaceGuid: string; organizationGuid: string },
): Promise<ImagePull> {
  const image = pkg.docker_image ?? '';
  if (pkg.docker_username && pkg.docker_password) {
    return { image, auth: { registry: registryOfImage(image), username: pkg.docker_username, password: pkg.docker_password, source: { kind: 'package' } } };
  }
  const found = box ? await resolveRegistryCredential(db, box, { image, ...where }) : undefined;
  if (!found) return { image };
  return {
    image,
    auth: { registry: found.host, username: found.username, password: found.password, source: { kind: 'registry_credential', scope: found.scope, guid: found.guid } },
  };
}
