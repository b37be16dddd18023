// Checks an Envoy YAML config against Envoy's own protos (from @grpc/grpc-js-xds deps/): every
// key must be a field of its message, every enum value a name of its enum, at most one field of
// each oneof, and every typed_config's "@type" a message that exists. No Envoy binary runs
// here, so this is how envoy/envoy.yaml is kept loadable.

import { accessSync } from 'node:fs';
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { UPSTREAM_INCLUDE_DIRS } from './upstream.js';

const EXTRA_PROTOS = [
  'envoy/config/bootstrap/v3/bootstrap.proto',
  'envoy/extensions/filters/http/ext_authz/v3/ext_authz.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
];

export function loadEnvoyRoot(): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => {
    for (const dir of UPSTREAM_INCLUDE_DIRS) {
      try {
        accessSync(join(dir, target));
        return join(dir, target);
      } catch {
        // next include dir
      }
    }
    return target;
  };
  root.loadSync(EXTRA_PROTOS, { keepCase: true });
  root.resolveAll();
  return root;
}

const DURATION = /^-?\d+(\.\d{1,9})?s$/;
const WRAPPERS = new Set(['google.protobuf.BoolValue', 'google.protobuf.UInt32Value', 'google.protobuf.UInt64Value', 'google.protobuf.Int32Value', 'google.protobuf.Int64Value', 'google.protobuf.DoubleValue', 'google.protobuf.FloatValue', 'google.protobuf.StringValue']);

/** Returns a list of problems, each with the path of the offending key. */
export function checkEnvoyMessage(root: protobuf.Root, typeName: string, value: unknown, path = '$'): string[] {
  const type = root.lookupType(typeName);
  const problems: string[] = [];
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return [`${path}: expected a ${typeName} object`];
  const setOneofs = new Map<string, string>();
  for (const [key, v] of Object.entries(value)) {
    if (key === '@type') continue;
    const field = type.fields[key];
    if (field === undefined) {
      problems.push(`${path}.${key}: not a field of ${typeName}`);
      continue;
    }
    if (field.partOf !== null && field.partOf !== undefined) {
      const other = setOneofs.get(field.partOf.name);
      if (other !== undefined) problems.push(`${path}.${key}: oneof ${field.partOf.name} already set by ${other}`);
      setOneofs.set(field.partOf.name, key);
    }
    const items = field.repeated ? (Array.isArray(v) ? v : [Symbol('not a list')]) : [v];
    if (field.repeated && !Array.isArray(v)) {
      problems.push(`${path}.${key}: expected a list`);
      continue;
    }
    const values = field.map ? Object.values(v as object) : items;
    values.forEach((item, i) => {
      const where = field.repeated ? `${path}.${key}[${i}]` : `${path}.${key}`;
      problems.push(...checkValue(root, field, item, where));
    });
  }
  return problems;
}

function checkValue(root: protobuf.Root, field: protobuf.Field, value: unknown, where: string): string[] {
  const resolved = field.resolvedType;
  if (resolved instanceof protobuf.Enum) {
    // proto3 JSON (and so Envoy's YAML) takes an enum value by name or by number.
    const known = typeof value === 'string' ? value in resolved.values : Object.values(resolved.values).includes(value as number);
    return known ? [] : [`${where}: "${String(value)}" is not a value of ${resolved.fullName.slice(1)}`];
  }
  if (resolved instanceof protobuf.Type) {
    const name = resolved.fullName.slice(1);
    if (name === 'google.protobuf.Duration') return typeof value === 'string' && DURATION.test(value) ? [] : [`${where}: "${String(value)}" is not a duration`];
    if (name === 'google.protobuf.Struct' || name === 'google.protobuf.Value') return [];
    if (WRAPPERS.has(name)) return typeof value === 'object' ? [`${where}: a ${name} is written as a plain value`] : [];
    if (name === 'google.protobuf.Any') {
      const url = (value as Record<string, unknown>)?.['@type'];
      if (typeof url !== 'string' || !url.startsWith('type.googleapis.com/')) return [`${where}: typed config needs "@type"`];
      const inner = url.slice('type.googleapis.com/'.length);
      try {
        root.lookupType(inner);
      } catch {
        return [`${where}: "@type" ${inner} is not a known message`];
      }
      return checkEnvoyMessage(root, inner, value, where);
    }
    return checkEnvoyMessage(root, name, value, where);
  }
  return [];
}
