/** Who is calling: built from a verified access token. */
export interface Principal {
  /** The user's guid (identity provider user_id), or the client_id for client tokens. */
  guid: string;
  username: string | null;
  origin: string | null;
  email: string | null;
  /** True for client-credentials tokens (no user). */
  isClient: boolean;
  scopes: ReadonlySet<string>;
}

export const SCOPES = {
  admin: 'cloud_controller.admin',
  adminReadOnly: 'cloud_controller.admin_read_only',
  globalAuditor: 'cloud_controller.global_auditor',
  read: 'cloud_controller.read',
  write: 'cloud_controller.write',
  updateBuildState: 'cloud_controller.update_build_state',
} as const;

export const isAdmin = (p: Principal) => p.scopes.has(SCOPES.admin);
export const isAdminReadOnly = (p: Principal) => p.scopes.has(SCOPES.adminReadOnly);
export const isGlobalAuditor = (p: Principal) => p.scopes.has(SCOPES.globalAuditor);
/** Admin, admin read-only and global auditor read everything (the last without secrets). */
export const readsEverything = (p: Principal) => isAdmin(p) || isAdminReadOnly(p) || isGlobalAuditor(p);
export const readsAllSecrets = (p: Principal) => isAdmin(p) || isAdminReadOnly(p);

/** The method gate of CONVENTIONS.md §13.1: which scopes allow a request with this HTTP method at all. */
export function methodAllowed(p: Principal, method: string): boolean {
  if (isAdmin(p)) return true;
  if (method === 'GET' || method === 'HEAD') {
    return isAdminReadOnly(p) || isGlobalAuditor(p) || p.scopes.has(SCOPES.read);
  }
  return p.scopes.has(SCOPES.write);
}
