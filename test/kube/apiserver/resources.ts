import type { Schema } from './schema.ts';

/**
 * What the server serves: a table of resource types. Built-in kinds are rows below; a CustomResourceDefinition
 * adds rows when it is created and takes them away when it is deleted. Nothing here knows about Kiln.
 */
export interface PrinterColumn {
  name: string;
  type: string;
  jsonPath: string;
  description?: string;
  priority?: number;
  format?: string;
}

export interface ResourceType {
  group: string;
  /** Served versions, storage version first. */
  versions: string[];
  kind: string;
  listKind: string;
  plural: string;
  singular: string;
  namespaced: boolean;
  shortNames: string[];
  categories: string[];
  hasStatus: boolean;
  /** Built-ins accept strategic merge patch; custom resources answer 415. */
  strategicMerge: boolean;
  /** Custom resources refuse updates without metadata.resourceVersion (builtins allow unconditional ones). */
  requireResourceVersionOnUpdate: boolean;
  /** Fields a fieldSelector may name, beyond metadata.name / metadata.namespace. */
  selectableFields: string[];
  /** Per served version, for custom resources. */
  schemas: Record<string, Schema | undefined>;
  printerColumns: Record<string, PrinterColumn[]>;
  /** Set for custom resources: the CRD's name. */
  crd?: string;
}

function builtin(
  group: string,
  version: string,
  kind: string,
  plural: string,
  opts: Partial<Pick<ResourceType, 'namespaced' | 'shortNames' | 'hasStatus' | 'selectableFields' | 'categories'>> & { printer?: PrinterColumn[] } = {},
): ResourceType {
  return {
    group,
    versions: [version],
    kind,
    listKind: `${kind}List`,
    plural,
    singular: kind.toLowerCase(),
    namespaced: opts.namespaced ?? true,
    shortNames: opts.shortNames ?? [],
    categories: opts.categories ?? [],
    hasStatus: opts.hasStatus ?? false,
    strategicMerge: true,
    requireResourceVersionOnUpdate: false,
    selectableFields: opts.selectableFields ?? [],
    schemas: {},
    printerColumns: opts.printer ? { [version]: opts.printer } : {},
  };
}

const age: PrinterColumn = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };

export const BUILTINS: ResourceType[] = [
  builtin('', 'v1', 'Namespace', 'namespaces', { namespaced: false, shortNames: ['ns'], hasStatus: true, selectableFields: ['status.phase'], printer: [{ name: 'Status', type: 'string', jsonPath: '.status.phase' }, age] }),
  builtin('', 'v1', 'ConfigMap', 'configmaps', { shortNames: ['cm'] }),
  builtin('', 'v1', 'Secret', 'secrets', { selectableFields: ['type'], printer: [{ name: 'Type', type: 'string', jsonPath: '.type' }, age] }),
  builtin('', 'v1', 'Service', 'services', { shortNames: ['svc'], hasStatus: true, categories: ['all'], printer: [{ name: 'Type', type: 'string', jsonPath: '.spec.type' }, { name: 'Cluster-IP', type: 'string', jsonPath: '.spec.clusterIP' }, age] }),
  builtin('', 'v1', 'Pod', 'pods', {
    shortNames: ['po'],
    hasStatus: true,
    categories: ['all'],
    selectableFields: ['spec.nodeName', 'spec.restartPolicy', 'spec.schedulerName', 'spec.serviceAccountName', 'status.phase', 'status.podIP'],
    printer: [{ name: 'Status', type: 'string', jsonPath: '.status.phase' }, { name: 'Node', type: 'string', jsonPath: '.spec.nodeName', priority: 1 }, age],
  }),
  builtin('', 'v1', 'Event', 'events', {
    shortNames: ['ev'],
    selectableFields: ['involvedObject.kind', 'involvedObject.namespace', 'involvedObject.name', 'involvedObject.uid', 'involvedObject.apiVersion', 'involvedObject.resourceVersion', 'involvedObject.fieldPath', 'reason', 'reportingComponent', 'source', 'type'],
    printer: [{ name: 'Type', type: 'string', jsonPath: '.type' }, { name: 'Reason', type: 'string', jsonPath: '.reason' }, { name: 'Message', type: 'string', jsonPath: '.message' }],
  }),
  builtin('', 'v1', 'ServiceAccount', 'serviceaccounts', { shortNames: ['sa'] }),
  builtin('', 'v1', 'Endpoints', 'endpoints', { shortNames: ['ep'] }),
  builtin('', 'v1', 'PersistentVolumeClaim', 'persistentvolumeclaims', { shortNames: ['pvc'], hasStatus: true }),
  builtin('', 'v1', 'Node', 'nodes', { namespaced: false, shortNames: ['no'], hasStatus: true }),
  builtin('apps', 'v1', 'Deployment', 'deployments', { shortNames: ['deploy'], hasStatus: true, categories: ['all'], printer: [{ name: 'Ready', type: 'string', jsonPath: '.status.readyReplicas' }, { name: 'Replicas', type: 'integer', jsonPath: '.spec.replicas' }, age] }),
  builtin('apps', 'v1', 'ReplicaSet', 'replicasets', { shortNames: ['rs'], hasStatus: true, categories: ['all'] }),
  builtin('apps', 'v1', 'StatefulSet', 'statefulsets', { shortNames: ['sts'], hasStatus: true, categories: ['all'] }),
  builtin('apps', 'v1', 'DaemonSet', 'daemonsets', { shortNames: ['ds'], hasStatus: true, categories: ['all'] }),
  builtin('batch', 'v1', 'Job', 'jobs', { hasStatus: true, categories: ['all'], selectableFields: ['status.successful'], printer: [{ name: 'Succeeded', type: 'integer', jsonPath: '.status.succeeded' }, age] }),
  builtin('batch', 'v1', 'CronJob', 'cronjobs', { shortNames: ['cj'], hasStatus: true, categories: ['all'] }),
  builtin('coordination.k8s.io', 'v1', 'Lease', 'leases'),
  builtin('discovery.k8s.io', 'v1', 'EndpointSlice', 'endpointslices'),
  builtin('networking.k8s.io', 'v1', 'Ingress', 'ingresses', { shortNames: ['ing'], hasStatus: true }),
  builtin('networking.k8s.io', 'v1', 'NetworkPolicy', 'networkpolicies', { shortNames: ['netpol'] }),
  builtin('policy', 'v1', 'PodDisruptionBudget', 'poddisruptionbudgets', { shortNames: ['pdb'], hasStatus: true }),
  builtin('rbac.authorization.k8s.io', 'v1', 'Role', 'roles'),
  builtin('rbac.authorization.k8s.io', 'v1', 'RoleBinding', 'rolebindings'),
  builtin('rbac.authorization.k8s.io', 'v1', 'ClusterRole', 'clusterroles', { namespaced: false }),
  builtin('rbac.authorization.k8s.io', 'v1', 'ClusterRoleBinding', 'clusterrolebindings', { namespaced: false }),
  builtin('events.k8s.io', 'v1', 'Event', 'events', { shortNames: ['ev'] }),
  builtin('apiextensions.k8s.io', 'v1', 'CustomResourceDefinition', 'customresourcedefinitions', {
    namespaced: false,
    shortNames: ['crd', 'crds'],
    hasStatus: true,
    categories: ['api-extensions'],
    printer: [{ name: 'Created At', type: 'string', jsonPath: '.metadata.creationTimestamp' }],
  }),
];

export const CRD_GROUP = 'apiextensions.k8s.io';

interface CrdVersion {
  name: string;
  served?: boolean;
  storage?: boolean;
  schema?: { openAPIV3Schema?: Schema };
  subresources?: { status?: object; scale?: object };
  additionalPrinterColumns?: PrinterColumn[];
  selectableFields?: { jsonPath: string }[];
}

export interface CrdSpec {
  group: string;
  names: { kind: string; listKind?: string; plural: string; singular?: string; shortNames?: string[]; categories?: string[] };
  scope: 'Namespaced' | 'Cluster';
  versions: CrdVersion[];
}

/** A CRD's spec as a served resource type (the storage version is the one objects are kept in). */
export function fromCrd(name: string, spec: CrdSpec): ResourceType {
  const served = spec.versions.filter((v) => v.served !== false);
  const storage = spec.versions.find((v) => v.storage) ?? served[0]!;
  const versions = [storage.name, ...served.map((v) => v.name).filter((n) => n !== storage.name)];
  return {
    group: spec.group,
    versions,
    kind: spec.names.kind,
    listKind: spec.names.listKind ?? `${spec.names.kind}List`,
    plural: spec.names.plural,
    singular: spec.names.singular ?? spec.names.kind.toLowerCase(),
    namespaced: spec.scope === 'Namespaced',
    shortNames: spec.names.shortNames ?? [],
    categories: spec.names.categories ?? [],
    hasStatus: spec.versions.some((v) => v.subresources?.status !== undefined),
    strategicMerge: false,
    requireResourceVersionOnUpdate: true,
    selectableFields: (storage.selectableFields ?? []).map((f) => f.jsonPath.replace(/^\./, '')),
    schemas: Object.fromEntries(spec.versions.map((v) => [v.name, v.schema?.openAPIV3Schema])),
    printerColumns: Object.fromEntries(spec.versions.map((v) => [v.name, v.additionalPrinterColumns ?? []])),
    crd: name,
  };
}

/** Problems with a CRD's spec that the real server refuses with 422. */
export function crdProblems(name: string, spec: Partial<CrdSpec> | undefined): { field: string; message: string }[] {
  const out: { field: string; message: string }[] = [];
  if (!spec?.group) out.push({ field: 'spec.group', message: 'Required value' });
  if (!spec?.names?.plural) out.push({ field: 'spec.names.plural', message: 'Required value' });
  if (!spec?.names?.kind) out.push({ field: 'spec.names.kind', message: 'Required value' });
  if (spec?.scope !== 'Namespaced' && spec?.scope !== 'Cluster') out.push({ field: 'spec.scope', message: 'Unsupported value: must be Namespaced or Cluster' });
  if (!spec?.versions?.length) out.push({ field: 'spec.versions', message: 'Required value' });
  else if (spec.versions.filter((v) => v.storage).length !== 1) out.push({ field: 'spec.versions', message: 'must have exactly one version marked as storage version' });
  else if (spec.versions.some((v) => !v.schema?.openAPIV3Schema)) out.push({ field: 'spec.versions[*].schema.openAPIV3Schema', message: 'Required value: schemas are required' });
  if (spec?.group && spec.names?.plural && name !== `${spec.names.plural}.${spec.group}`)
    out.push({ field: 'metadata.name', message: `must be spec.names.plural+"."+spec.group` });
  return out;
}
