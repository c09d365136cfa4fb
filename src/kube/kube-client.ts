import * as k8s from '@kubernetes/client-node';
import { API_GROUP, API_VERSION } from './schemas.ts';

/**
 * The sync controller's view of the cluster: informers on the kiln.dev kinds and the few writes it makes
 * (finalizers, status). Everything goes through @kubernetes/client-node with a kubeconfig file or, in a pod,
 * the in-cluster service account.
 */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    generation?: number;
    resourceVersion?: string;
    deletionTimestamp?: string;
    finalizers?: string[];
    labels?: Record<string, string>;
  };
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
}

export type Plural = 'organizations' | 'spaces' | 'apps' | 'routes' | 'serviceinstances' | 'servicebindings' | 'gitsources';

export function loadKubeConfig(source: string): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  if (source === 'in-cluster') kc.loadFromCluster();
  else kc.loadFromFile(source);
  return kc;
}

const merge = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);

export class KubeClient {
  private readonly api: k8s.CustomObjectsApi;
  private readonly core: k8s.CoreV1Api;
  constructor(
    readonly kc: k8s.KubeConfig,
    /** Watch one namespace for namespaced kinds; undefined watches all. */
    readonly namespace: string | undefined,
  ) {
    this.api = kc.makeApiClient(k8s.CustomObjectsApi);
    this.core = kc.makeApiClient(k8s.CoreV1Api);
  }

  /**
   * Records a core/v1 Event about a resource (`kubectl describe` shows them). Cluster-scoped resources' events
   * go to `default`, as the real control plane does. Best effort: an event that cannot be written is dropped.
   */
  async event(kind: string, obj: KubeObject, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    const namespace = obj.metadata.namespace ?? 'default';
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    await this.core
      .createNamespacedEvent({
        namespace,
        body: {
          metadata: { generateName: `${obj.metadata.name}.`, namespace },
          involvedObject: { apiVersion: `${API_GROUP}/${API_VERSION}`, kind, name: obj.metadata.name, namespace: obj.metadata.namespace, uid: obj.metadata.uid, resourceVersion: obj.metadata.resourceVersion },
          type,
          reason,
          message,
          source: { component: 'kiln-kube-sync' },
          reportingComponent: 'kiln.dev/sync',
          reportingInstance: process.env.HOSTNAME ?? 'kiln',
          firstTimestamp: now as unknown as Date,
          lastTimestamp: now as unknown as Date,
          count: 1,
        },
      })
      .catch(() => undefined);
  }

  informer(plural: Plural, namespaced: boolean): k8s.Informer<k8s.KubernetesObject> & k8s.ObjectCache<k8s.KubernetesObject> {
    const ns = namespaced ? this.namespace : undefined;
    const path = ns ? `/apis/${API_GROUP}/${API_VERSION}/namespaces/${ns}/${plural}` : `/apis/${API_GROUP}/${API_VERSION}/${plural}`;
    const list = () =>
      (ns
        ? this.api.listNamespacedCustomObject({ group: API_GROUP, version: API_VERSION, namespace: ns, plural })
        : this.api.listClusterCustomObject({ group: API_GROUP, version: API_VERSION, plural })) as Promise<k8s.KubernetesListObject<k8s.KubernetesObject>>;
    return k8s.makeInformer(this.kc, path, list);
  }

  /** A JSON merge patch of the object (finalizers, with its resourceVersion as precondition). */
  async patch(plural: Plural, obj: KubeObject, body: Record<string, unknown>): Promise<void> {
    const base = { group: API_GROUP, version: API_VERSION, plural, name: obj.metadata.name, body };
    if (obj.metadata.namespace) await this.api.patchNamespacedCustomObject({ ...base, namespace: obj.metadata.namespace }, merge);
    else await this.api.patchClusterCustomObject(base, merge);
  }

  async patchStatus(plural: Plural, obj: KubeObject, status: Record<string, unknown>): Promise<void> {
    const base = { group: API_GROUP, version: API_VERSION, plural, name: obj.metadata.name, body: { status } };
    if (obj.metadata.namespace) await this.api.patchNamespacedCustomObjectStatus({ ...base, namespace: obj.metadata.namespace }, merge);
    else await this.api.patchClusterCustomObjectStatus(base, merge);
  }

  /** A Secret's data, decoded (git credentials are referenced by Secret name, never written into a resource). */
  async secretData(namespace: string, name: string): Promise<Record<string, string>> {
    const secret = await this.core.readNamespacedSecret({ namespace, name });
    return Object.fromEntries(Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
  }
}

/** A 404/409 from the API server: the object moved on; the next event brings it back. */
export function isStale(err: unknown): boolean {
  const code = (err as { code?: number }).code;
  return code === 404 || code === 409;
}

/**
 * What the sync controller does in the cluster, as RBAC rules (for a ClusterRole in deploy/). A test checks
 * that the requests it makes stay within them.
 */
export const SYNC_RBAC_RULES = [
  { apiGroups: [API_GROUP], resources: ['organizations', 'spaces', 'apps', 'routes', 'serviceinstances', 'servicebindings', 'gitsources'], verbs: ['list', 'watch', 'patch'] },
  { apiGroups: [API_GROUP], resources: ['organizations/status', 'spaces/status', 'apps/status', 'routes/status', 'serviceinstances/status', 'servicebindings/status', 'gitsources/status'], verbs: ['patch'] },
  { apiGroups: [''], resources: ['events'], verbs: ['create'] },
  // Only the Secrets an App's `source.git.secretRef`, a GitSource's `secretRef` and a ServiceInstance's
  // `credentials.secretRef` name.
  { apiGroups: [''], resources: ['secrets'], verbs: ['get'] },
] as const;
