// Typed readers for untrusted config values; every error names the field it is about.

export class ConfigError extends Error {
  constructor(
    readonly field: string,
    readonly detail: string,
    /** `file:line` of the field in the config file, when known (load.ts adds it). */
    readonly at: string | null = null,
  ) {
    super(`${at === null ? '' : `${at}: `}${field}: ${detail}`);
    this.name = 'ConfigError';
  }
}

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function expectObject(value: unknown, field: string, allowedKeys: readonly string[]): JsonObject {
  if (!isObject(value)) throw new ConfigError(field, 'must be a mapping');
  for (const key of Object.keys(value)) {
    if (!allowedKeys.includes(key)) {
      throw new ConfigError(`${field}.${key}`, `unknown key (known keys: ${allowedKeys.join(', ')})`);
    }
  }
  return value;
}

export function readString(obj: JsonObject, key: string, field: string, fallback: string): string;
export function readString(obj: JsonObject, key: string, field: string, fallback: null): string | null;
export function readString(obj: JsonObject, key: string, field: string, fallback: string | null): string | null {
  const value = obj[key];
  if (value === undefined) return fallback;
  if (value === null && fallback === null) return null;
  if (typeof value !== 'string' || value.length === 0) throw new ConfigError(`${field}.${key}`, 'must be a non-empty string');
  return value;
}

export function readBoolean(obj: JsonObject, key: string, field: string, fallback: boolean): boolean {
  const value = obj[key];
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new ConfigError(`${field}.${key}`, 'must be true or false');
  return value;
}

export function readInteger(obj: JsonObject, key: string, field: string, fallback: number, min: number, max: number): number {
  const value = obj[key];
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${field}.${key}`, `must be an integer from ${min} to ${max}`);
  }
  return value;
}

export function readStringList(obj: JsonObject, key: string, field: string, fallback: readonly string[]): readonly string[] {
  const value = obj[key];
  if (value === undefined) return fallback;
  if (!Array.isArray(value)) throw new ConfigError(`${field}.${key}`, 'must be a list of strings');
  return value.map((item, i) => {
    if (typeof item !== 'string' || item.length === 0) throw new ConfigError(`${field}.${key}[${i}]`, 'must be a non-empty string');
    return item;
  });
}
