import { KubeError } from './errors.ts';
import type { KObj } from './storage.ts';

/**
 * kubectl's typed commands (`kubectl create namespace|configmap|secret|serviceaccount`) send protobuf bodies
 * (`application/vnd.kubernetes.protobuf`). This decodes those few kinds — the envelope (`k8s\0` + Unknown)
 * and the fields of ObjectMeta that a client can set — into the JSON form; any other kind sent as protobuf is
 * refused with 415 (every other kubectl path, apply/get/patch/delete/wait, speaks JSON).
 */
type Field = { no: number; wire: number; value: bigint | Buffer };

function fields(buf: Buffer): Field[] {
  const out: Field[] = [];
  let i = 0;
  const varint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      const b = buf[i++]!;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
    }
  };
  while (i < buf.length) {
    const key = Number(varint());
    const no = key >> 3;
    const wire = key & 7;
    if (wire === 0) out.push({ no, wire, value: varint() });
    else if (wire === 2) {
      const len = Number(varint());
      out.push({ no, wire, value: buf.subarray(i, i + len) });
      i += len;
    } else if (wire === 1) i += 8;
    else if (wire === 5) i += 4;
    else throw new KubeError('BadRequest', `protobuf: unsupported wire type ${wire}`);
  }
  return out;
}

const str = (f: Field) => (f.value as Buffer).toString('utf8');
const bool = (f: Field) => f.value !== 0n;

function map(fs: Field[], no: number, bytes = false): Record<string, string> | undefined {
  const entries = fs.filter((f) => f.no === no);
  if (entries.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const e of entries) {
    const kv = fields(e.value as Buffer);
    const k = kv.find((f) => f.no === 1);
    const v = kv.find((f) => f.no === 2);
    out[k ? str(k) : ''] = v ? (bytes ? (v.value as Buffer).toString('base64') : str(v)) : '';
  }
  return out;
}

function objectMeta(buf: Buffer): KObj {
  const fs = fields(buf);
  const md: KObj = {};
  for (const f of fs) {
    if (f.no === 1) md.name = str(f);
    if (f.no === 2) md.generateName = str(f);
    if (f.no === 3) md.namespace = str(f);
    if (f.no === 6) md.resourceVersion = str(f);
    if (f.no === 14) (md.finalizers ??= []).push(str(f));
    if (f.no === 13) {
      const r = fields(f.value as Buffer);
      const ref: KObj = {};
      for (const x of r) {
        if (x.no === 1) ref.kind = str(x);
        if (x.no === 3) ref.name = str(x);
        if (x.no === 4) ref.uid = str(x);
        if (x.no === 5) ref.apiVersion = str(x);
        if (x.no === 6) ref.controller = bool(x);
        if (x.no === 7) ref.blockOwnerDeletion = bool(x);
      }
      (md.ownerReferences ??= []).push(ref);
    }
  }
  const labels = map(fs, 11);
  const annotations = map(fs, 12);
  if (labels) md.labels = labels;
  if (annotations) md.annotations = annotations;
  return md;
}

export function decodeProtobuf(body: Buffer): KObj {
  if (body.subarray(0, 4).toString('latin1') !== 'k8s\0') throw new KubeError('BadRequest', 'protobuf body without the k8s envelope');
  const env = fields(body.subarray(4));
  const typeMeta = fields((env.find((f) => f.no === 1)?.value as Buffer) ?? Buffer.alloc(0));
  const apiVersion = str(typeMeta.find((f) => f.no === 1) ?? { no: 1, wire: 2, value: Buffer.from('') });
  const kind = str(typeMeta.find((f) => f.no === 2) ?? { no: 2, wire: 2, value: Buffer.from('') });
  const raw = fields((env.find((f) => f.no === 2)?.value as Buffer) ?? Buffer.alloc(0));
  const meta = raw.find((f) => f.no === 1);
  const obj: KObj = { apiVersion, kind, metadata: meta ? objectMeta(meta.value as Buffer) : {} };
  const one = (no: number) => raw.find((f) => f.no === no);
  switch (`${apiVersion}/${kind}`) {
    case 'v1/Namespace': {
      const spec = one(2);
      if (spec) obj.spec = { finalizers: fields(spec.value as Buffer).filter((f) => f.no === 1).map(str) };
      break;
    }
    case 'v1/ConfigMap': {
      const data = map(raw, 2);
      const binary = map(raw, 3, true);
      if (data) obj.data = data;
      if (binary) obj.binaryData = binary;
      if (one(4)) obj.immutable = bool(one(4)!);
      break;
    }
    case 'v1/Secret': {
      const data = map(raw, 2, true);
      const stringData = map(raw, 4);
      if (data) obj.data = data;
      if (stringData) obj.stringData = stringData;
      if (one(3)) obj.type = str(one(3)!);
      if (one(5)) obj.immutable = bool(one(5)!);
      break;
    }
    case 'v1/ServiceAccount': {
      const pulls = raw.filter((f) => f.no === 3).map((f) => ({ name: str(fields(f.value as Buffer).find((x) => x.no === 1)!) }));
      if (pulls.length) obj.imagePullSecrets = pulls;
      if (one(4)) obj.automountServiceAccountToken = bool(one(4)!);
      break;
    }
    default:
      throw new KubeError('UnsupportedMediaType', `this test server decodes protobuf only for Namespace, ConfigMap, Secret and ServiceAccount (got ${apiVersion} ${kind}); send JSON`);
  }
  return obj;
}
