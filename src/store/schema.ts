import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely';
import type { AppLifecycleType, AppState } from '../domain/apps.ts';
import type { BuildpackState } from '../domain/buildpacks.ts';
import type { BuildState } from '../domain/builds.ts';
import type { CanaryStep, DeploymentState } from '../domain/deployments.ts';
import type { DropletState } from '../domain/droplets.ts';
import type { PackageState } from '../domain/packages.ts';
import type { RoutePolicySourceType } from '../domain/route-policies.ts';
import type { RouteOptions } from '../domain/routes.ts';
import type { StackState } from '../domain/stacks.ts';
import type { TaskState } from '../domain/tasks.ts';

/**
 * The one description of Kiln's tables. Timestamps are ISO-8601 strings with milliseconds
 * (`2026-01-02T03:04:05.678Z`): they sort lexicographically on both SQLite and PostgreSQL, and
 * are rendered truncated to the second. Booleans are integers 0/1 so both dialects return the same type.
 */

type Id = Generated<number>;
type Flag = number; // 0 | 1

/** Columns every first-class resource row carries (DESIGN.md, "Desired vs observed state"). */
export interface ResourceColumns {
  id: Id;
  guid: string;
  created_at: string;
  updated_at: string;
  /** Bumped by every update; updates are conditional on it (optimistic concurrency). */
  generation: ColumnType<number, number | undefined, number>;
}

export interface OrganizationsTable extends ResourceColumns {
  name: string;
  suspended: Flag;
  /** `active` or `deleting` (an asynchronous delete is in flight). */
  status: string;
  quota_guid: string | null;
  default_isolation_segment_guid: string | null;
}

export interface SpacesTable extends ResourceColumns {
  name: string;
  organization_guid: string;
  status: string;
  allow_ssh: Flag;
  isolation_segment_guid: string | null;
  space_quota_guid: string | null;
}

/** Cloud Controller's view of a user: the guid is the identity provider's user_id (or a client_id). */
export interface UsersTable extends ResourceColumns {
  username: string | null;
  origin: string | null;
}

export interface RolesTable extends ResourceColumns {
  type: string;
  user_guid: string;
  organization_guid: string | null;
  space_guid: string | null;
}

export interface FeatureFlagsTable {
  name: string;
  enabled: Flag;
  custom_error_message: string | null;
  updated_at: string;
}

export interface StacksTable extends ResourceColumns {
  name: string;
  description: string | null;
  build_rootfs_image: string | null;
  run_rootfs_image: string | null;
  is_default: Flag;
  /** ACTIVE, RESTRICTED, DEPRECATED or DISABLED (migration 0004). */
  state: ColumnType<StackState, StackState | undefined, StackState>;
  state_reason: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface DomainsTable extends ResourceColumns {
  name: string;
  internal: Flag;
  owning_organization_guid: string | null;
  router_group_guid: string | null;
  /** 1 when the router checks callers of this domain's routes against their route policies (migrations/0018). */
  enforce_route_policies: Defaulted<Flag>;
  /** CC's `route_policies_scope` (any, org, space) or null. */
  route_policies_scope: string | null;
}

export interface DomainSharedOrganizationsTable {
  domain_guid: string;
  organization_guid: string;
}

interface QuotaColumns {
  name: string;
  total_memory_in_mb: number | null;
  per_process_memory_in_mb: number | null;
  total_instances: number | null;
  per_app_tasks: number | null;
  log_rate_limit_in_bytes_per_second: number | null;
  paid_services_allowed: Flag;
  total_service_instances: number | null;
  total_service_keys: number | null;
  total_routes: number | null;
  total_reserved_ports: number | null;
}

export interface OrganizationQuotasTable extends ResourceColumns, QuotaColumns {
  total_domains: number | null;
}

export interface SpaceQuotasTable extends ResourceColumns, QuotaColumns {
  organization_guid: string;
}

export interface IsolationSegmentsTable extends ResourceColumns {
  name: string;
}

export interface IsolationSegmentOrganizationsTable {
  isolation_segment_guid: string;
  organization_guid: string;
}

export interface EnvironmentVariableGroupsTable {
  name: string;
  /** JSON object of string values. */
  variables: string;
  updated_at: string;
}

export interface SecurityGroupsTable extends ResourceColumns {
  name: string;
  /** JSON array of rules. */
  rules: string;
  running_default: Flag;
  staging_default: Flag;
}

export interface SecurityGroupSpacesTable {
  security_group_guid: string;
  space_guid: string;
  /** `running` or `staging`. */
  lifecycle: string;
}

export interface AuditEventsTable {
  id: Id;
  guid: string;
  created_at: string;
  updated_at: string;
  type: string;
  actor_guid: string;
  actor_type: string;
  actor_name: string;
  actor_username: string;
  target_guid: string;
  target_type: string;
  target_name: string;
  /** JSON object. */
  data: string;
  space_guid: string | null;
  organization_guid: string | null;
}

export interface JobsTable {
  id: Id;
  guid: string;
  created_at: string;
  updated_at: string;
  operation: string;
  /** PROCESSING, POLLING, COMPLETE, FAILED. */
  state: string;
  resource_type: string;
  resource_guid: string;
  /** JSON array of CF error objects. */
  errors: string;
  /** JSON array of `{detail}`. */
  warnings: string;
  user_guid: string | null;
  attempts: number;
}

/** Labels live in their own rows so that label selectors are plain indexed SQL on both dialects. */
export interface LabelsTable {
  id: Id;
  resource_type: string;
  resource_guid: string;
  key_prefix: string;
  key_name: string;
  value: string;
}

export interface AnnotationsTable {
  id: Id;
  resource_type: string;
  resource_guid: string;
  key_prefix: string;
  key_name: string;
  value: string;
}

/** The change feed reconcilers follow: one row per written resource per transaction. */
export interface ChangesTable {
  revision: Generated<number>;
  kind: string;
  guid: string;
  op: string;
  created_at: string;
}

/** Exact row counts of the tables with list endpoints, kept by triggers (migration 0087; src/store/row-counts.ts). */
export interface RowCountsTable {
  table_name: string;
  /** bigint: a string on PostgreSQL. */
  n: number | string;
}

/** PostgreSQL's pending additions to `row_counts` (one per row inserted or deleted); empty on SQLite. */
export interface RowCountDeltasTable {
  id: Generated<number>;
  table_name: string;
  delta: number;
}

/** One condition of a reconciled resource (migration 0030); see controllers/runtime/conditions.ts. */
export interface ConditionsTable {
  kind: string;
  guid: string;
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  observed_generation: number;
  last_transition_time: string;
}

/** The built-in identity provider's accounts (UAA's side of a user). */
export interface IdentityUsersTable {
  id: Id;
  guid: string;
  created_at: string;
  updated_at: string;
  username: string;
  origin: string;
  email: string | null;
  given_name: string | null;
  family_name: string | null;
  password_hash: string;
  /** Space-separated scopes granted to the user (UAA group memberships). */
  scopes: string;
  active: Flag;
}

export interface IdentityClientsTable {
  client_id: string;
  /** Empty string for public clients such as `cf`. */
  secret_hash: string;
  scopes: string;
  authorities: string;
  grant_types: string;
  created_at: string;
}

/** Small key/value facts Kiln keeps about itself (e.g. whether the bootstrap admin was created). */
export interface SettingsTable {
  key: string;
  value: string;
}

/** A column with a database default: optional on insert. */
type Defaulted<T> = ColumnType<T, T | undefined, T>;

/**
 * A JSON column: text in the database, `T` once parsed. Reads carry the shape (`parseJsonText` returns it);
 * writes take the serialised string, as before.
 */
export type JsonText<T> = string & { readonly __json?: T };
type DefaultedJson<T> = ColumnType<JsonText<T>, string | undefined, string>;

/** Parses a JSON column into the shape its type declares (the writer is trusted to have stored that shape). */
export const parseJsonText = <T>(text: JsonText<T>): T => JSON.parse(text) as T;

/** Apps (migration 0010). `state` is the desired state: STOPPED or STARTED. */
export interface AppsTable extends ResourceColumns {
  name: string;
  space_guid: string;
  state: Defaulted<AppState>;
  /** `active` or `deleting` (an asynchronous delete is in flight). */
  status: Defaulted<string>;
  /** `buildpack` or `docker`. */
  lifecycle_type: Defaulted<AppLifecycleType>;
  /** JSON array of buildpack names or URLs. */
  lifecycle_buildpacks: DefaultedJson<string[]>;
  lifecycle_stack: string | null;
  /** JSON object of string values. */
  environment_variables: Defaulted<string>;
  /** The current droplet. */
  droplet_guid: string | null;
  enable_ssh: Defaulted<Flag>;
  revisions_enabled: Defaulted<Flag>;
  /** App feature `service-binding-k8s` (migration 0053). */
  service_binding_k8s_enabled: Defaulted<Flag>;
  /** App feature `file-based-vcap-services` (migration 0053). */
  file_based_vcap_services_enabled: Defaulted<Flag>;
  observed_generation: Defaulted<number>;
}

export interface ProcessesTable extends ResourceColumns {
  app_guid: string;
  type: string;
  /** The user's command; null means the droplet's detected command for this type. */
  command: string | null;
  instances: Defaulted<number>;
  memory_in_mb: Defaulted<number>;
  disk_in_mb: Defaulted<number>;
  /** -1 is unlimited. */
  log_rate_limit_in_bytes_per_second: Defaulted<number>;
  /** port, process or http. */
  health_check_type: Defaulted<string>;
  health_check_timeout: number | null;
  health_check_invocation_timeout: number | null;
  health_check_interval: number | null;
  health_check_endpoint: string | null;
  /** port, process or http. */
  readiness_check_type: Defaulted<string>;
  readiness_check_invocation_timeout: number | null;
  readiness_check_interval: number | null;
  readiness_check_endpoint: string | null;
  /** A token that changes whenever running instances must be replaced. */
  version: string;
  observed_generation: Defaulted<number>;
  /** The revision this process runs (migration 0013); null when revisions are off or before the first. */
  revision_guid: ColumnType<string | null, string | null | undefined, string | null>;
  /** The version whose launch settings the next two columns hold (migration 0013). */
  launched_version: ColumnType<string | null, string | null | undefined, string | null>;
  launched_droplet_guid: ColumnType<string | null, string | null | undefined, string | null>;
  /** JSON object of the user variables that version started with. */
  launched_environment_variables: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface PackagesTable extends ResourceColumns {
  app_guid: string;
  /** bits or docker. */
  type: string;
  /** AWAITING_UPLOAD, PROCESSING_UPLOAD, READY, FAILED, COPYING, EXPIRED. */
  state: PackageState;
  error: string | null;
  checksum_sha256: string | null;
  checksum_sha1: string | null;
  docker_image: string | null;
  docker_username: string | null;
  docker_password: string | null;
  blob_key: string | null;
  size_in_bytes: number | null;
  source_package_guid: string | null;
}

export interface BuildsTable extends ResourceColumns {
  app_guid: string;
  package_guid: string;
  /** STAGING, STAGED or FAILED. */
  state: Defaulted<BuildState>;
  error: string | null;
  lifecycle_type: Defaulted<AppLifecycleType>;
  /** JSON `{buildpacks, stack}`. */
  lifecycle_data: Defaulted<string>;
  staging_memory_in_mb: Defaulted<number>;
  staging_disk_in_mb: Defaulted<number>;
  staging_log_rate_limit_bytes_per_second: Defaulted<number>;
  droplet_guid: string | null;
  created_by_guid: string | null;
  created_by_name: string | null;
  created_by_email: string | null;
  observed_generation: Defaulted<number>;
}

export interface DropletsTable extends ResourceColumns {
  app_guid: string;
  package_guid: string | null;
  build_guid: string | null;
  /** AWAITING_UPLOAD, PROCESSING_UPLOAD, STAGED, COPYING, FAILED, EXPIRED. */
  state: DropletState;
  error: string | null;
  lifecycle_type: Defaulted<AppLifecycleType>;
  /** JSON object: process type -> command. */
  process_types: DefaultedJson<Record<string, string>>;
  execution_metadata: Defaulted<string>;
  /** JSON array of `{name, detect_output, buildpack_name, version}`. */
  buildpacks: Defaulted<string>;
  stack: string | null;
  image: string | null;
  checksum_sha256: string | null;
  checksum_sha1: string | null;
  blob_key: string | null;
  size_in_bytes: number | null;
  source_droplet_guid: string | null;
}

export interface RoutesTable extends ResourceColumns {
  host: Defaulted<string>;
  path: Defaulted<string>;
  /** 0 for HTTP routes (no port). */
  port: Defaulted<number>;
  domain_guid: string;
  space_guid: string;
  /** http or tcp. */
  protocol: Defaulted<string>;
  /** JSON object of route options. */
  options: DefaultedJson<RouteOptions>;
}

export interface RouteDestinationsTable extends ResourceColumns {
  route_guid: string;
  app_guid: string;
  process_type: Defaulted<string>;
  port: Defaulted<number>;
  /** http1, http2 or tcp. */
  protocol: Defaulted<string>;
  weight: number | null;
}

export interface RouteSharesTable {
  route_guid: string;
  space_guid: string;
}

/** Admin buildpacks (migration 0011). */
export interface BuildpacksTable extends ResourceColumns {
  name: string;
  stack: string | null;
  /** 1-based, dense per lifecycle; auto-detection tries buildpacks in this order. */
  position: number;
  enabled: Defaulted<Flag>;
  locked: Defaulted<Flag>;
  /** AWAITING_UPLOAD or READY. */
  state: Defaulted<BuildpackState>;
  filename: string | null;
  blob_key: string | null;
  /** SHA-256 of the uploaded zip. */
  checksum: string | null;
  /** `buildpack` or `cnb`. */
  lifecycle: Defaulted<string>;
  /** Name of a buildpack shipped with Kiln (src/staging/buildpacks), used while no bits were uploaded. */
  builtin: string | null;
}

/** One-off tasks of apps (migration 0012). */
export interface TasksTable extends ResourceColumns {
  app_guid: string;
  droplet_guid: string;
  name: string;
  command: string;
  /** PENDING, RUNNING, CANCELING, SUCCEEDED or FAILED. */
  state: Defaulted<TaskState>;
  /** Per-app counter, 1, 2, … */
  sequence_id: number;
  memory_in_mb: number;
  disk_in_mb: number;
  log_rate_limit: Defaulted<number>;
  /** The container user asked for (null: the droplet's default). */
  run_user: string | null;
  failure_reason: string | null;
  /** 1 once the task controller handed it to the runtime (migration 0016); a new RUNNING task starts at 0. */
  launched: Defaulted<number>;
}

/** Snapshots of what an app runs (migration 0013). */
export interface RevisionsTable extends ResourceColumns {
  app_guid: string;
  /** 1, 2, … per app. */
  version: number;
  droplet_guid: string;
  /** JSON object of the app's user environment variables at revision time. */
  environment_variables: Defaulted<string>;
  /** JSON object: process type → user command (null = detected). */
  commands: DefaultedJson<Record<string, string | null>>;
  description: string | null;
}

/** Rolling and canary deployments (migration 0013); see src/controllers/deployment-controller.ts. */
export interface DeploymentsTable extends ResourceColumns {
  app_guid: string;
  /** DEPLOYING, PREPAUSED, PAUSED, CANCELING, DEPLOYED or CANCELED. */
  state: DeploymentState;
  status_value: string;
  status_reason: string;
  strategy: string;
  droplet_guid: string;
  previous_droplet_guid: string | null;
  revision_guid: string | null;
  previous_revision_guid: string | null;
  /** The web process the deployment created and scales up (for a stopped app: the one it started in place). */
  process_guid: string;
  process_type: string;
  /** Unused since migration 0016 (rollouts used to run two versions of one process). */
  old_version: string | null;
  /** The version of `process_guid` the deployment created. */
  new_version: string;
  /** Upstream's original_web_process_instance_count. */
  original_instances: number;
  /** web_instances, else original_instances. */
  target_instances: number;
  /** Instances of the new web process, as last set by the deployment controller. */
  new_instances: number;
  /** Instances of the other web processes together, as last set by the deployment controller. */
  old_instances: number;
  max_in_flight: number;
  web_instances: number | null;
  memory_in_mb: number | null;
  disk_in_mb: number | null;
  log_rate_limit_in_bytes_per_second: number | null;
  canary_steps: ColumnType<JsonText<CanaryStep[]> | null, string | null, string | null>;
  /** 1-based current canary step. */
  canary_step: Defaulted<number>;
  previous_environment_variables: Defaulted<string>;
  previous_command: string | null;
  previous_memory_in_mb: number;
  previous_disk_in_mb: number;
  previous_log_rate_limit: number;
  last_healthy_at: string;
  last_status_change: string;
  error: string | null;
  /** JSON array of `{guid, type}`: the processes this deployment created (migration 0016). */
  new_processes: DefaultedJson<Array<{ guid: string; type: string }>>;
}

/** Sidecars of an app's process types (migration 0014). */
export interface SidecarsTable extends ResourceColumns {
  app_guid: string;
  name: string;
  command: string;
  memory_in_mb: number | null;
  /** `user` or `buildpack`. */
  origin: Defaulted<string>;
}

/** The process types a sidecar runs with; app_guid repeated so the process controller needs no join. */
export interface SidecarProcessTypesTable {
  sidecar_guid: string;
  type: string;
  app_guid: string;
}

/** Instance crashes already recorded as events (see migrations/0017). */
/** The leader's runtime instances, per process, for the other replicas (migration 0075). */
export interface PublishedInstancesTable {
  process_guid: string;
  replica: string;
  /** JSON InstanceStatus[]. */
  instances: string;
  published_at: string;
}

export interface InstanceCrashesTable {
  instance_guid: string;
  /** Epoch ms of the exit. */
  crashed_at: number;
  process_guid: string;
}

/** Who may call a route on an enforcing domain (migrations/0018). */
export interface RoutePoliciesTable extends ResourceColumns {
  route_guid: string;
  source_type: RoutePolicySourceType;
  /** '' for `cf:any`. */
  source_guid: string;
}

/** Per-app sandbox uid/gid (offset by the id); see migrations/0015_app_sandbox.ts. */
export interface AppSandboxIdsTable {
  id: Generated<number>;
  app_guid: string;
  created_at: string;
}

/** Locks on apps and spaces (migration 0040); see src/services/locks.ts. */
export interface LocksTable extends ResourceColumns {
  name: string;
  reason: string | null;
  /** `app` or `space`. */
  resource_type: 'app' | 'space';
  resource_guid: string;
  /** The locked resource's space (the space itself for a space lock): visibility follows it. */
  space_guid: string;
  /** The principal holding the lock (user guid or client id) and its name at the time it was taken. */
  owner_guid: string;
  owner_name: string;
  /** The lease length each renewal extends `expires_at` by. */
  ttl_seconds: number;
  expires_at: string;
}

/** Credentials for container registries (migration 0040); see src/services/registry-credentials.ts. */
export interface RegistryCredentialsTable extends ResourceColumns {
  scope: 'foundation' | 'organization' | 'space';
  /** '' for the foundation scope, else the organization or space guid. */
  scope_guid: string;
  /** The owning org (organization scope, and the space's org for space scope). */
  organization_guid: string | null;
  space_guid: string | null;
  /** Registry host (and port), lower case, e.g. `registry.example.com:5000`; Docker Hub is `docker.io`. */
  host: string;
  username: string;
  secret_type: 'password' | 'token';
  /** The secret sealed by src/store/secret-box.ts; never returned. */
  secret_ciphertext: string;
}

/** The last operation of an instance or binding and the polling of an async one (migration 0050). */
export interface LastOperationColumns {
  /** create, update or delete. */
  last_operation_type: Defaulted<'create' | 'update' | 'delete'>;
  /** initial, in progress, succeeded or failed. */
  last_operation_state: Defaulted<'initial' | 'in progress' | 'succeeded' | 'failed'>;
  last_operation_description: string | null;
  last_operation_created_at: string;
  last_operation_updated_at: string;
  broker_operation: string | null;
  /** Epoch ms of the next last_operation poll. */
  poll_next_at: number | null;
  /** Epoch ms after which the operation has timed out. */
  poll_deadline: number | null;
  poll_count: Defaulted<number>;
}

/** OSBAPI service brokers (migration 0050); `auth_enc` is the encrypted `{username, password}`. */
export interface ServiceBrokersTable extends ResourceColumns {
  name: string;
  url: string;
  auth_enc: string;
  space_guid: string | null;
  /** SYNCHRONIZING, AVAILABLE, SYNCHRONIZATION_FAILED or DELETE_IN_PROGRESS. */
  state: string;
}

export interface ServiceOfferingsTable extends ResourceColumns {
  service_broker_guid: string;
  broker_catalog_id: string;
  name: string;
  description: Defaulted<string>;
  available: Defaulted<Flag>;
  bindable: Defaulted<Flag>;
  plan_updateable: Defaulted<Flag>;
  instances_retrievable: Defaulted<Flag>;
  bindings_retrievable: Defaulted<Flag>;
  allow_context_updates: Defaulted<Flag>;
  shareable: Defaulted<Flag>;
  /** JSON array of strings. */
  tags: Defaulted<string>;
  /** JSON array: syslog_drain, route_forwarding, volume_mount. */
  requires: Defaulted<string>;
  documentation_url: string | null;
  /** JSON object: the catalog's `metadata`. */
  catalog_metadata: Defaulted<string>;
}

export interface ServicePlansTable extends ResourceColumns {
  service_offering_guid: string;
  broker_catalog_id: string;
  name: string;
  description: Defaulted<string>;
  available: Defaulted<Flag>;
  free: Defaulted<Flag>;
  /** null: the offering's. */
  bindable: Flag | null;
  plan_updateable: Flag | null;
  maximum_polling_duration: number | null;
  /** JSON `{version, description}` or null. */
  maintenance_info: string | null;
  schemas: Defaulted<string>;
  costs: Defaulted<string>;
  catalog_metadata: Defaulted<string>;
  visibility_type: Defaulted<'admin' | 'public' | 'organization' | 'space'>;
}

export interface ServicePlanVisibilitiesTable {
  service_plan_guid: string;
  organization_guid: string;
}

export interface ServiceInstancesTable extends ResourceColumns, LastOperationColumns {
  type: 'managed' | 'user-provided';
  name: string;
  space_guid: string;
  service_plan_guid: string | null;
  credentials_enc: string | null;
  parameters_enc: string | null;
  syslog_drain_url: string | null;
  route_service_url: string | null;
  dashboard_url: string | null;
  tags: Defaulted<string>;
  maintenance_info: string | null;
  /** The update request (plan, parameters, maintenance_info) until the broker answered, encrypted. */
  pending_update_enc: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface ServiceInstanceSharesTable {
  service_instance_guid: string;
  space_guid: string;
}

export interface ServiceCredentialBindingsTable extends ResourceColumns, LastOperationColumns {
  type: 'app' | 'key';
  name: string | null;
  service_instance_guid: string;
  app_guid: string | null;
  credentials_enc: string | null;
  parameters_enc: string | null;
  syslog_drain_url: string | null;
  /** JSON array of the broker's volume mounts. */
  volume_mounts: Defaulted<string>;
}

export interface ServiceRouteBindingsTable extends ResourceColumns, LastOperationColumns {
  service_instance_guid: string;
  route_guid: string;
  route_service_url: string | null;
  parameters_enc: string | null;
}

/** Backups of managed service instances (migration 0056); see src/services/service-backups.ts. */
export type BackupState = 'CREATING' | 'READY' | 'FAILED' | 'RESTORING';
export interface ServiceInstanceBackupsTable extends ResourceColumns {
  service_instance_guid: string;
  state: BackupState;
  size_in_bytes: number | null;
  /** When the broker finished the backup, and when a restore from it last succeeded. */
  completed_at: string | null;
  restored_at: string | null;
  last_operation_type: 'create' | 'restore';
  last_operation_state: 'in progress' | 'succeeded' | 'failed';
  last_operation_description: string | null;
  last_operation_updated_at: string;
  /** The broker's token of the async create or restore being polled (null while the job has not sent it). */
  broker_operation: string | null;
  /** Epoch ms of the next poll. */
  poll_next_at: number | null;
}

/** A plan-definition write waiting for its job (migration 0056); see src/services/plan-definitions.ts. */
export interface ServicePlanDefinitionRequestsTable extends ResourceColumns {
  action: 'create' | 'update' | 'delete';
  service_offering_guid: string;
  broker_plan_id: string;
  /** The definition sent to the broker (JSON). */
  definition: string;
}

/** A repository path of YAML Kiln keeps applied (migration 0065; src/gitops/git-source-sync.ts). */
export interface GitSourcesTable extends ResourceColumns {
  name: string;
  url: string;
  ref: string | null;
  path: string | null;
  /** Where plain CF manifests go. */
  org: string | null;
  space: string | null;
  /** A name in KILN_GIT_CREDENTIALS_FILE. */
  credential: string | null;
  /** PENDING, APPLIED, FAILED (nothing applied), DEGRADED (applied, some files in error). */
  state: ColumnType<string, string | undefined, string>;
  message: string | null;
  last_commit: string | null;
  last_applied_at: string | null;
  /** JSON `[{file, message}]`. */
  errors: ColumnType<string, string | undefined, string>;
}

/** Service usage events (migration 0051): names copied in when the event happened. */
export interface ServiceUsageEventsTable {
  id: Id;
  guid: string;
  created_at: string;
  /** CREATED, UPDATED or DELETED. */
  state: 'CREATED' | 'UPDATED' | 'DELETED';
  space_guid: string;
  space_name: string;
  organization_guid: string;
  service_instance_guid: string;
  service_instance_name: string;
  service_instance_type: string;
  service_plan_guid: string | null;
  service_plan_name: string | null;
  service_offering_guid: string | null;
  service_offering_name: string | null;
  service_broker_guid: string | null;
  service_broker_name: string | null;
}

/** App usage events (migration 0052): names and footprint copied in when the event happened. */
export interface AppUsageEventsTable {
  id: Id;
  guid: string;
  created_at: string;
  state: AppUsageState;
  previous_state: AppUsageState | null;
  app_guid: string;
  app_name: string;
  process_guid: string;
  process_type: string;
  space_guid: string;
  space_name: string;
  organization_guid: string;
  instance_count: number;
  previous_instance_count: number | null;
  memory_in_mb_per_instance: number;
  previous_memory_in_mb_per_instance: number | null;
  droplet_guid: string | null;
  buildpack_guid: string | null;
  buildpack_name: string | null;
  /** Set for TASK_STARTED / TASK_STOPPED (migration 0054); process_guid and process_type are '' then. */
  task_guid: string | null;
  task_name: string | null;
}

/** CC's app usage states Kiln records (not the STAGING_* ones). */
export type AppUsageState = 'STARTED' | 'STOPPED' | 'BUILDPACK_SET' | 'TASK_STARTED' | 'TASK_STOPPED';

export interface Database {
  organizations: OrganizationsTable;
  spaces: SpacesTable;
  users: UsersTable;
  roles: RolesTable;
  feature_flags: FeatureFlagsTable;
  stacks: StacksTable;
  domains: DomainsTable;
  domain_shared_organizations: DomainSharedOrganizationsTable;
  organization_quotas: OrganizationQuotasTable;
  space_quotas: SpaceQuotasTable;
  isolation_segments: IsolationSegmentsTable;
  isolation_segment_organizations: IsolationSegmentOrganizationsTable;
  environment_variable_groups: EnvironmentVariableGroupsTable;
  security_groups: SecurityGroupsTable;
  security_group_spaces: SecurityGroupSpacesTable;
  audit_events: AuditEventsTable;
  jobs: JobsTable;
  labels: LabelsTable;
  annotations: AnnotationsTable;
  changes: ChangesTable;
  row_counts: RowCountsTable;
  row_count_deltas: RowCountDeltasTable;
  conditions: ConditionsTable;
  identity_users: IdentityUsersTable;
  identity_clients: IdentityClientsTable;
  settings: SettingsTable;
  apps: AppsTable;
  processes: ProcessesTable;
  packages: PackagesTable;
  builds: BuildsTable;
  droplets: DropletsTable;
  routes: RoutesTable;
  route_destinations: RouteDestinationsTable;
  route_shares: RouteSharesTable;
  buildpacks: BuildpacksTable;
  tasks: TasksTable;
  revisions: RevisionsTable;
  deployments: DeploymentsTable;
  sidecars: SidecarsTable;
  sidecar_process_types: SidecarProcessTypesTable;
  instance_crashes: InstanceCrashesTable;
  published_instances: PublishedInstancesTable;
  app_sandbox_ids: AppSandboxIdsTable;
  locks: LocksTable;
  registry_credentials: RegistryCredentialsTable;
  service_brokers: ServiceBrokersTable;
  service_offerings: ServiceOfferingsTable;
  service_plans: ServicePlansTable;
  service_plan_visibilities: ServicePlanVisibilitiesTable;
  service_instances: ServiceInstancesTable;
  service_instance_shares: ServiceInstanceSharesTable;
  service_credential_bindings: ServiceCredentialBindingsTable;
  service_route_bindings: ServiceRouteBindingsTable;
  service_usage_events: ServiceUsageEventsTable;
  app_usage_events: AppUsageEventsTable;
  route_policies: RoutePoliciesTable;
  service_instance_backups: ServiceInstanceBackupsTable;
  service_plan_definition_requests: ServicePlanDefinitionRequestsTable;
  git_sources: GitSourcesTable;
}

export type Row<T extends keyof Database> = Selectable<Database[T]>;
export type NewRow<T extends keyof Database> = Insertable<Database[T]>;
export type RowUpdate<T extends keyof Database> = Updateable<Database[T]>;

/** Tables whose rows are first-class resources with guid, timestamps and generation. */
export type ResourceTable = {
  [K in keyof Database]: Database[K] extends ResourceColumns ? K : never;
}[keyof Database];
