import { RawNode, sql, type OperationNode, type RawBuilder, type SqlBool } from 'kysely';

const TEXT = '1 = 1';

/**
 * The condition a visibility helper gives a caller who may see everything (a global reader): it filters nothing.
 * Made here only, so that listPage can recognise it (isEveryRow) and still count a whole table from its kept count.
 */
export const everyRow = (): RawBuilder<SqlBool> => sql.raw<SqlBool>(TEXT);

/** Whether a condition is everyRow(), whatever builder or plugin passed it on (its text is compared, not its identity). */
export const isEveryRow = (node: OperationNode): boolean =>
  RawNode.is(node) && node.parameters.length === 0 && node.sqlFragments.length === 1 && node.sqlFragments[0] === TEXT;
