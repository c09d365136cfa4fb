/**
 * What the Kubernetes runtime calls, as RBAC policy rules: what an installation must grant Kiln's service account
 * (a Role in the apps' namespace, and a ClusterRole for the namespace it may create). A test checks every call the
 * runtime made against these rules (test/e2e/kubernetes-runtime.test.ts).
 */
export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

/** In KILN_KUBE_RUNTIME_NAMESPACE. */
export const RUNTIME_NAMESPACE_RULES: readonly PolicyRule[] = [
  { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch', 'create', 'delete'] },
  { apiGroups: [''], resources: ['pods/log'], verbs: ['get'] },
  { apiGroups: ['batch'], resources: ['jobs'], verbs: ['get', 'list', 'watch', 'create', 'patch', 'delete'] },
  // Optional: stats read CPU and memory from metrics-server when it is installed.
  { apiGroups: ['metrics.k8s.io'], resources: ['pods'], verbs: ['get'] },
];

/** Cluster-wide. Optional: without it the namespace must exist (a 403 on creating it is accepted). */
export const RUNTIME_CLUSTER_RULES: readonly PolicyRule[] = [{ apiGroups: [''], resources: ['namespaces'], verbs: ['create'] }];

/** Whether `rules` allow `verb` on `resource` (`pods`, `pods/log`) of `group`. */
export function allows(rules: readonly PolicyRule[], group: string, resource: string, verb: string): boolean {
  return rules.some((r) => r.apiGroups.includes(group) && r.resources.includes(resource) && r.verbs.includes(verb));
}
