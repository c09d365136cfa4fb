export { startApiServer, type ApiServer, type ApiServerOptions, type RecordedCall, type SubresourceRequest } from './server.ts';
export { Storage, type KObj } from './storage.ts';
export { KubeError } from './errors.ts';
