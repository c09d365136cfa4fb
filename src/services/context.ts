import type { Principal } from '../domain/principal.ts';
import type { Store } from '../store/store.ts';
import type { Access } from './access.ts';

/** What a use-case runs with: the store and the caller. */
export interface Ctx {
  store: Store;
  access: Access;
  principal: Principal;
}
