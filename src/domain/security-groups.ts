import { z } from 'zod';
import type { ListSpec } from './list-params.ts';
import { rubyToS } from './value-text.ts';

/**
 * Security groups: named lists of egress rules, applied to apps' containers while running and/or staging,
 * either globally (`globally_enabled`) or per space. Validation follows Cloud Controller with its default
 * settings: IPv4 only (`enable_ipv6: false`) and one destination per rule
 * (`security_groups.enable_comma_delimited_destinations: false`).
 */

export const SECURITY_GROUP_LIST: ListSpec = {
  filters: ['names', 'running_space_guids', 'staging_space_guids'],
  params: ['globally_enabled_running', 'globally_enabled_staging'],
};

/** `GET /v3/spaces/:guid/running_security_groups` and `…/staging_security_groups`. */
export const SPACE_SECURITY_GROUP_LIST: ListSpec = { filters: ['names'] };

export type Lifecycle = 'running' | 'staging';
export const LIFECYCLES: readonly Lifecycle[] = ['running', 'staging'];

export const MAX_NAME_LENGTH = 250;
const MAX_RULES_JSON_LENGTH = 2 ** 24 - 1;
const MAX_DESTINATIONS_PER_RULE = 6000;
const PROTOCOLS = ['tcp', 'udp', 'icmp', 'icmpv6', 'all'];
const ALLOWED_RULE_KEYS = ['code', 'description', 'destination', 'log', 'ports', 'protocol', 'type'];
const INVALID_DESTINATION = 'destination must be a valid CIDR, IP address, or IP address range';

export type Rule = Record<string, unknown>;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
/** Ruby truthiness: everything but nil and false. */
const truthy = (v: unknown) => v !== undefined && v !== null && v !== false;
const rubyInspect = (keys: string[]) => `[${keys.map((k) => JSON.stringify(k)).join(', ')}]`;

/** Ruby's String#split: trailing empty fields are dropped (and '' splits into nothing). */
function rubySplit(s: string, sep: string): string[] {
  const parts = s.split(sep);
  while (parts.length > 0 && parts[parts.length - 1] === '') parts.pop();
  return parts;
}

// ---- IPv4 addresses, as Ruby's IPAddr parses them ----

function parseIpv4Address(s: string): number | undefined {
  const octets = s.split('.');
  if (octets.length !== 4) return undefined;
  let value = 0;
  for (const o of octets) {
    // Zero-filled octets are ambiguous (decimal or octal?) and rejected.
    if (!/^\d{1,3}$/.test(o) || (o.length > 1 && o.startsWith('0'))) return undefined;
    const n = Number(o);
    if (n > 255) return undefined;
    value = value * 256 + n;
  }
  return value;
}

/** An address or CIDR (`a.b.c.d`, `a.b.c.d/len`, `a.b.c.d/m.a.s.k`); the numeric network address. */
export function parseIpv4Cidr(s: string): number | undefined {
  const slash = s.indexOf('/');
  if (slash < 0) return parseIpv4Address(s);
  const address = parseIpv4Address(s.slice(0, slash));
  if (address === undefined) return undefined;
  const prefix = s.slice(slash + 1);
  let maskBits: number;
  if (/^\d+$/.test(prefix)) {
    maskBits = Number(prefix);
    if (maskBits > 32) return undefined;
  } else {
    const mask = parseIpv4Address(prefix);
    if (mask === undefined) return undefined;
    const inverted = (~mask >>> 0) >>> 0;
    if (((inverted + 1) & inverted) !== 0) return undefined; // the mask's one-bits must be contiguous
    maskBits = 32 - Math.log2(inverted + 1);
  }
  const mask = maskBits === 0 ? 0 : (0xffffffff << (32 - maskBits)) >>> 0;
  return (address & mask) >>> 0;
}

/** Range endpoints are plain addresses: a prefix is not allowed there. */
const parseRangeEndpoint = (s: string) => (s.includes('/') ? undefined : parseIpv4Address(s));

/** Upstream's extra leading-zero check, which also looks inside a CIDR's address part. */
function noLeadingZeros(address: string): boolean {
  if (!address.includes('.')) return true;
  for (const octet of address.split('.')) {
    if (octet.startsWith('0') && octet.length > 1) {
      const parts = octet.split('/');
      if (parts.length < 2) return false;
      if (parts[0]!.length > 1 && parts[0]!.startsWith('0')) return false;
    }
  }
  return true;
}

/** True for one valid destination: an IPv4 address, CIDR, or ascending `a-b` address range. */
export function validDestination(destination: string): boolean {
  if (destination.includes(',')) return false;
  const list = rubySplit(destination, '-');
  if (list.length === 1) return parseIpv4Cidr(list[0]!) !== undefined;
  if (list.length === 2) {
    const a = parseRangeEndpoint(list[0]!);
    const b = parseRangeEndpoint(list[1]!);
    return a !== undefined && b !== undefined && a <= b;
  }
  return false;
}

/** Ports: `443`, `80,443,8080` or `8000-9000` (1..65535; a range must ascend). */
export function validPorts(ports: unknown): boolean {
  if (typeof ports !== 'string') return false;
  if (/[^\d\s\-,]/.test(ports)) return false;
  const range = /^\s*(\d+)\s*-\s*(\d+)\s*$/.exec(ports);
  const inRange = (n: number) => n > 0 && n < 65536;
  if (range) {
    const left = Number(range[1]);
    const right = Number(range[2]);
    return left < right && inRange(left) && inRange(right);
  }
  const list = rubySplit(ports, ',');
  if (list.length === 0) return false;
  return list.every((p) => /^\s*\d+\s*$/.test(p) && inRange(Number(p.trim())));
}

const validIcmp = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= -1 && v < 256;

// ---- request validation (message level) ----

function destinationErrors(destination: string, protocol: unknown): string[] {
  const errors: string[] = [];
  const list = rubySplit(destination, '-');
  const zerosOk = list.every(noLeadingZeros);
  if (!zerosOk) errors.push('destination octets cannot contain leading zeros');
  // With IPv6 disabled every parsed address is IPv4, which only `icmpv6` rules cannot use.
  const ipv4Refused = `for protocol "${rubyToS(protocol)}" you cannot use IPv4 addresses`;
  if (list.length === 1) {
    const parsed = parseIpv4Cidr(list[0]!);
    if (parsed === undefined && zerosOk) errors.push(INVALID_DESTINATION);
    if (parsed !== undefined && protocol === 'icmpv6') errors.push(ipv4Refused);
  } else if (list.length === 2) {
    const a = parseRangeEndpoint(list[0]!);
    const b = parseRangeEndpoint(list[1]!);
    if (a === undefined || b === undefined) return [...errors, 'destination IP address range is invalid'];
    if (a > b) errors.push('beginning of IP address range is numerically greater than the end of its range (range endpoints are inverted)');
    if (protocol === 'icmpv6') errors.push(ipv4Refused);
  } else {
    errors.push(INVALID_DESTINATION);
  }
  return errors;
}

/** One rule's problems as the request validator words them (without the `Rules[i]:` prefix). */
function ruleMessageErrors(rule: Rule): string[] {
  const errors: string[] = [];
  const unknown = Object.keys(rule).filter((k) => !ALLOWED_RULE_KEYS.includes(k));
  if (unknown.length > 0) errors.push(`unknown field(s): ${rubyInspect(unknown)}`);
  const protocol = rule.protocol;
  if (typeof protocol !== 'string' || !PROTOCOLS.includes(protocol)) {
    errors.push("protocol must be 'tcp', 'udp', 'icmp', 'icmpv6' or 'all'");
  }
  const destination = rule.destination;
  if (destination === undefined || destination === null) errors.push(INVALID_DESTINATION);
  else if (typeof destination !== 'string') errors.push('destination must be a string');
  else if (/\s/.test(destination)) errors.push('destination must not contain whitespace');
  else if (destination.includes(',')) errors.push(INVALID_DESTINATION);
  else {
    const destinations = rubySplit(destination, ',');
    if (destinations.length > MAX_DESTINATIONS_PER_RULE) {
      errors.push(`maximum destinations per rule exceeded - must be under ${MAX_DESTINATIONS_PER_RULE}`);
    }
    for (const d of destinations) errors.push(...destinationErrors(d, protocol));
  }
  if (truthy(rule.description) && typeof rule.description !== 'string') errors.push('description must be a string');
  if (truthy(rule.log) && typeof rule.log !== 'boolean') errors.push('log must be a boolean');
  switch (protocol) {
    case 'tcp':
    case 'udp':
      if (!truthy(rule.ports)) errors.push('ports are required for protocols of type TCP and UDP');
      if (!validPorts(rule.ports)) {
        errors.push('ports must be a valid single port, comma separated list of ports, or range or ports, formatted as a string');
      }
      break;
    case 'icmpv6':
    case 'icmp':
      if (protocol === 'icmpv6') errors.push('icmpv6 cannot be used if enable_ipv6 is false');
      if (!truthy(rule.code)) errors.push('code is required for protocols of type ICMP');
      if (!validIcmp(rule.code)) errors.push('code must be an integer between -1 and 255 (inclusive)');
      if (!truthy(rule.type)) errors.push('type is required for protocols of type ICMP');
      if (!validIcmp(rule.type)) errors.push('type must be an integer between -1 and 255 (inclusive)');
      break;
    case 'all':
      if (truthy(rule.ports)) errors.push('ports are not allowed for protocols of type all');
      break;
  }
  return errors;
}

/** `rules` as the request validator checks it; messages are full sentences (`Rules[0]: …`). */
export function rulesMessageErrors(rules: unknown): string[] {
  if (!Array.isArray(rules)) return ['Rules must be an array'];
  const errors: string[] = [];
  rules.forEach((rule, i) => {
    if (!isObject(rule)) errors.push(`Rules[${i}]: must be an object`);
    else for (const e of ruleMessageErrors(rule)) errors.push(`Rules[${i}]: ${e}`);
  });
  return errors;
}

// ---- stored-value validation (model level) ----

const REQUIRED: Record<string, string[]> = {
  tcp: ['protocol', 'destination', 'ports'],
  udp: ['protocol', 'destination', 'ports'],
  icmp: ['protocol', 'destination', 'code', 'type'],
  icmpv6: ['protocol', 'destination', 'code', 'type'],
  all: ['protocol', 'destination'],
};
const OPTIONAL = ['log', 'description'];

function ruleModelErrors(rule: Rule): string[] {
  const protocol = typeof rule.protocol === 'string' ? rule.protocol : '';
  const required = REQUIRED[protocol];
  if (!required) return ['contains an unsupported protocol'];
  const keys = Object.keys(rule);
  const errors = [
    ...required.filter((f) => !keys.includes(f)).map((f) => `missing required field '${f}'`),
    ...keys.filter((k) => !required.includes(k) && !OPTIONAL.includes(k)).map((k) => `contains the invalid field '${k}'`),
  ];
  if (errors.length > 0) return errors;
  const destination = rule.destination;
  if (typeof destination !== 'string' || destination === '' || /\s/.test(destination) || !validDestination(destination)) {
    errors.push('contains invalid destination');
  }
  if ('log' in rule && typeof rule.log !== 'boolean') errors.push('contains invalid log value');
  if ('description' in rule && typeof rule.description !== 'string') errors.push('contains invalid description');
  if (errors.length > 0) return errors;
  if (protocol === 'tcp' || protocol === 'udp') {
    if (!validPorts(rule.ports)) errors.push('contains invalid ports');
  } else if (protocol === 'icmp' || protocol === 'icmpv6') {
    if (!validIcmp(rule.type)) errors.push('contains invalid type');
    if (!validIcmp(rule.code)) errors.push('contains invalid code');
  }
  return errors;
}

/**
 * The second line of defence upstream runs when the group is saved (after the request checks passed):
 * per-protocol required and permitted fields, and the name's characters.
 */
export function securityGroupModelErrors(name: string | undefined, rules: Rule[] | undefined): string[] {
  const errors: string[] = [];
  if (name !== undefined && !/^[^\p{Cc}]+$/u.test(name)) errors.push('name is invalid');
  if (rules) {
    if (JSON.stringify(rules).length > MAX_RULES_JSON_LENGTH) errors.push(`rules length must not exceed ${MAX_RULES_JSON_LENGTH} characters`);
    rules.forEach((rule, i) => {
      for (const e of ruleModelErrors(rule)) errors.push(`rules rule number ${i + 1} ${e}`);
    });
  }
  return errors;
}

// ---- request bodies ----

function globallyEnabledErrors(value: unknown): string[] {
  if (value === undefined || value === null) return [];
  if (!isObject(value)) return ['Globally enabled must be an object'];
  if (Object.keys(value).some((k) => k !== 'running' && k !== 'staging')) return ["Globally enabled only allows keys 'running' or 'staging'"];
  if (Object.values(value).some((v) => typeof v !== 'boolean')) return ['Globally enabled values must be booleans'];
  return [];
}

function nameErrors(name: unknown, creating: boolean): string[] {
  const errors: string[] = [];
  if (creating && (name === undefined || name === null || (typeof name === 'string' && name.trim() === ''))) errors.push("Name can't be blank");
  if (creating || name !== undefined) {
    if (typeof name !== 'string') errors.push('Name must be a string');
    else if (!creating && name.length < 1) errors.push('Name is too short (minimum is 1 character)');
    else if (name.length > MAX_NAME_LENGTH) errors.push(`Name is too long (maximum is ${MAX_NAME_LENGTH} characters)`);
  }
  return errors;
}

function toManyGuids(attribute: 'running_spaces' | 'staging_spaces', value: unknown, errors: string[]): string[] {
  if (value === undefined || value === null) return [];
  const human = attribute === 'running_spaces' ? 'Running spaces' : 'Staging spaces';
  const data = isObject(value) ? value.data : undefined;
  const wellFormed = Array.isArray(data) && data.every((d) => isObject(d) && Object.keys(d).length === 1 && Object.hasOwn(d, 'guid'));
  if (!wellFormed) {
    errors.push(
      `Relationships ${human} must be structured like this: "${attribute}: {"data": [{"guid": "valid-guid"},{"guid": "valid-guid"}]}"`,
    );
    return [];
  }
  const guids: string[] = [];
  const singular = attribute === 'running_spaces' ? 'Running space guids' : 'Staging space guids';
  for (const d of data as Array<{ guid: unknown }>) {
    if (typeof d.guid !== 'string') {
      errors.push(`Relationships ${singular} must be a string`);
      errors.push(`Relationships ${singular} must be between 1 and 200 characters`);
    } else if (d.guid.length < 1 || d.guid.length > 200) {
      errors.push(`Relationships ${singular} must be between 1 and 200 characters`);
    } else guids.push(d.guid);
  }
  return guids;
}

export interface SecurityGroupInput {
  name?: string;
  rules?: Rule[];
  running?: boolean;
  staging?: boolean;
  runningSpaceGuids: string[];
  stagingSpaceGuids: string[];
}

function bodyParser(creating: boolean) {
  const allowed = creating ? ['name', 'globally_enabled', 'relationships', 'rules'] : ['name', 'globally_enabled', 'rules'];
  return z.unknown().transform((value, ctx): SecurityGroupInput => {
    const body = isObject(value) ? value : {};
    const errors: string[] = [];
    const extra = Object.keys(body).filter((k) => !allowed.includes(k));
    if (extra.length > 0) errors.push(`Unknown field(s): '${extra.join("', '")}'`);
    let runningSpaceGuids: string[] = [];
    let stagingSpaceGuids: string[] = [];
    if (creating && Object.hasOwn(body, 'relationships')) {
      const rel = body.relationships;
      if (!isObject(rel)) errors.push("Relationships 'relationships' is not an object");
      else if (Object.keys(rel).length === 0) errors.push("Relationships 'relationships' must include one or more valid relationships");
      else {
        runningSpaceGuids = toManyGuids('running_spaces', rel.running_spaces, errors);
        stagingSpaceGuids = toManyGuids('staging_spaces', rel.staging_spaces, errors);
      }
    }
    if (Object.hasOwn(body, 'rules')) errors.push(...rulesMessageErrors(body.rules));
    if (creating) {
      errors.push(...nameErrors(body.name, true));
      errors.push(...globallyEnabledErrors(body.globally_enabled));
    } else {
      errors.push(...globallyEnabledErrors(body.globally_enabled));
      errors.push(...nameErrors(body.name, false));
    }
    if (errors.length > 0) {
      for (const message of errors) ctx.issues.push({ code: 'custom', message, input: value });
      return z.NEVER;
    }
    const ge = isObject(body.globally_enabled) ? body.globally_enabled : {};
    return {
      ...(typeof body.name === 'string' ? { name: body.name } : {}),
      ...(Array.isArray(body.rules) ? { rules: body.rules as Rule[] } : {}),
      ...(typeof ge.running === 'boolean' ? { running: ge.running } : {}),
      ...(typeof ge.staging === 'boolean' ? { staging: ge.staging } : {}),
      runningSpaceGuids: [...new Set(runningSpaceGuids)],
      stagingSpaceGuids: [...new Set(stagingSpaceGuids)],
    };
  });
}

export const CreateSecurityGroupSchema = bodyParser(true);
export const UpdateSecurityGroupSchema = bodyParser(false);

/** `POST …/relationships/running_spaces|staging_spaces`: `{"data": [{"guid": …}, …]}`. */
export const SecurityGroupSpacesSchema = z.unknown().transform((value, ctx) => {
  const body = isObject(value) ? value : {};
  const errors: string[] = [];
  const extra = Object.keys(body).filter((k) => k !== 'data');
  if (extra.length > 0) errors.push(`Unknown field(s): '${extra.join("', '")}'`);
  const data = body.data;
  if (data === undefined || data === null || data === '' || (Array.isArray(data) && data.length === 0) || (isObject(data) && Object.keys(data).length === 0)) {
    errors.push("Data can't be blank");
  }
  if (data !== undefined && data !== null && !Array.isArray(data)) errors.push('Data must be an array');
  const guids: string[] = [];
  if (Array.isArray(data)) {
    data.forEach((item, i) => {
      const guid = isObject(item) ? item.guid : undefined;
      if (typeof guid === 'string') guids.push(guid);
      else errors.push(`Invalid data type: Data[${i}] guid should be a string.`);
    });
  }
  if (errors.length > 0) {
    for (const message of errors) ctx.issues.push({ code: 'custom', message, input: value });
    return z.NEVER;
  }
  return { guids: [...new Set(guids)] };
});

/** A `globally_enabled_running` / `globally_enabled_staging` query value; undefined when absent. */
export function booleanParamError(name: string, value: string | undefined): string | undefined {
  if (value === undefined || value === 'true' || value === 'false') return undefined;
  return `${name.charAt(0).toUpperCase()}${name.slice(1).replace(/_/g, ' ')} must be 'true' or 'false'`;
}
