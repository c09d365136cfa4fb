import { notNull, resourceColumns, type KilnMigration } from './helpers.ts';

/**
 * GitSources (issue 10, item 5): a repository and a path of YAML (kiln.dev documents or CF manifests) that Kiln
 * keeps applied, with prune. `org`/`space` name where plain CF manifests go; `credential` names an entry of
 * KILN_GIT_CREDENTIALS_FILE (never the secret itself). The `last_*` columns are the reconciler's report: the
 * commit applied, when, and the per-file errors (JSON `[{file, message}]`).
 */
export const gitSources: KilnMigration = {
  async up(db, dialect) {
    await resourceColumns(db.schema.createTable('git_sources'), dialect)
      .addColumn('name', 'text', (c) => c.notNull().unique())
      .addColumn('url', 'text', notNull)
      .addColumn('ref', 'text')
      .addColumn('path', 'text')
      .addColumn('org', 'text')
      .addColumn('space', 'text')
      .addColumn('credential', 'text')
      .addColumn('state', 'text', (c) => c.notNull().defaultTo('PENDING'))
      .addColumn('message', 'text')
      .addColumn('last_commit', 'text')
      .addColumn('last_applied_at', 'text')
      .addColumn('errors', 'text', (c) => c.notNull().defaultTo('[]'))
      .execute();
  },
};
