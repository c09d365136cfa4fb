import { Ajv, type ErrorObject } from 'ajv';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { KilnError, unprocessable } from '../domain/errors.ts';

/**
 * Checks a plan definition against the JSON schema its broker published (issue 15: "validate definitions against
 * the broker's JSON schema before sending them"). Ajv is the JSON-schema validator the API tests already use; a
 * schema that says `$schema: …/2020-12/…` gets the 2020-12 dialect, any other draft-07 (what OSBAPI's own
 * parameter schemas use). Formats are not asserted: a broker's format names are its own business.
 */
const draft7 = new Ajv({ strict: false, allErrors: true, validateFormats: false });
const draft2020 = new Ajv2020({ strict: false, allErrors: true, validateFormats: false });

const describe = (e: ErrorObject) => `${e.instancePath || '(root)'} ${e.message ?? e.keyword}`;

/** Throws 422 listing every violation, or 502 when the broker's schema is not a schema. */
export function assertMatchesSchema(schema: Record<string, unknown>, definition: unknown): void {
  const ajv = typeof schema.$schema === 'string' && schema.$schema.includes('2020-12') ? draft2020 : draft7;
  let validate;
  try {
    // Without $id the compiled schema is not cached by ajv, so a broker changing its schema is seen at once.
    const { $id: _id, ...rest } = schema;
    validate = ajv.compile(rest);
  } catch (err) {
    throw new KilnError('ServiceBrokerRequestMalformed').with(unprocessable(`The service broker's plan definition schema is invalid: ${(err as Error).message}`));
  }
  if (validate(definition)) return;
  const problems = (validate.errors ?? []).map(describe);
  throw unprocessable(`The definition does not match the service offering's plan definition schema: ${problems.join('; ')}`);
}
