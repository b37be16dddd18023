// Memory under the half-sent-message attack (issue #12 §4): anyone who reaches the Check port
// opens streams, announces large gRPC messages and never finishes them. grpc-js buffers a
// message whole before decoding it, so what stays bounded is what limits.maxMessageBytes,
// maxConcurrentStreams and maxConnections allow. Mandate runs in its own process (the example,
// default limits) and its RSS is read from /proc; the attacker is this process.
//
//   node dist/bench/half-sent.js [--connections 8] [--streams 100] [--rounds 3] [--smoke] [--out FILE]
//
// Phases: (1) the attack, 200 streams announcing 3.9 MB each and sending 64 KB; (2) the
// worst that fits under the limits: every stream of every connection holding a message one
// byte short of maxMessageBytes; (3) everything closed. A legitimate Check is timed in each.

import { readFileSync, writeFileSync } from 'node:fs';
/** A grpc-js client method, called with the client as `this` (clients built at run time have no typed methods). */
type GrpcMethod = (...args: unknown[]) => unknown;
import { connect, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import { parseArgs } from 'node:util';
import { credentials, makeClientConstructor, type Client } from '@grpc/grpc-js';
import { AUTHORIZATION_SERVICE } from '../src/server/protos.js';
import { DEFAULTS } from '../src/config/defaults.js';
import { startMandate } from './harness.js';

const { values } = parseArgs({ options: { connections: { type: 'string' }, streams: { type: 'string' }, smoke: { type: 'boolean' }, rounds: { type: 'string' }, out: { type: 'string' } } });
const smoke = values.smoke === true;
const rounds = Number(values.rounds ?? (smoke ? 1 : 3));
const connections = Number(values.connections ?? (smoke ? 2 : 8));
const streams = Number(values.streams ?? (smoke ? 10 : DEFAULTS.maxConcurrentStreams));
const CHECK_PATH = '/envoy.service.auth.v3.Authorization/Check';

const rssMb = (pid: number): number => {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m === null ? NaN : Math.round(Number(m[1]) / 1024);
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function session(address: string): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const s = connect(`http://${address}`);
    s.once('remoteSettings', () => resolve(s));
    s.once('error', reject);
  });
}

/** Announces `declared` bytes, sends `sent` of them; resolves with the grpc-status if one comes within `waitMs`. */
function halfSend(s: ClientHttp2Session, declared: number, sent: number, open: ClientHttp2Stream[]): Promise<string | null> {
  const stream = s.request({ ':method': 'POST', ':path': CHECK_PATH, 'content-type': 'application/grpc', te: 'trailers' });
  open.push(stream);
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(declared, 1);
  stream.write(Buffer.concat([prefix, Buffer.alloc(sent - 5, 0x41)]));
  stream.on('error', () => undefined);
  stream.on('data', () => undefined);
  return new Promise((resolve) => {
    const take = (h: Record<string, unknown>) => h['grpc-status'] !== undefined && resolve(String(h['grpc-status']));
    stream.on('response', take);
    stream.on('trailers', take);
    stream.on('close', () => resolve(null));
    setTimeout(() => resolve(null), 1000).unref();
  });
}

const Authorization = makeClientConstructor(AUTHORIZATION_SERVICE, 'envoy.service.auth.v3.Authorization');
async function timedCheck(address: string): Promise<number> {
  const client = new Authorization(address, credentials.createInsecure()) as Client & Record<string, GrpcMethod>;
  const started = process.hrtime.bigint();
  await new Promise((resolve, reject) => {
    const request = { attributes: { source: { principal: 'spiffe://example.org/ns/support/sa/support-agent' }, request: { http: { method: 'GET', path: '/tickets/T-1', headers: {} } } } };
    (client['Check'] as GrpcMethod).call(client, request, { deadline: new Date(Date.now() + 5000) }, (err: Error | null, res: unknown) => (err ? reject(err) : resolve(res)));
  });
  client.close();
  return Number(process.hrtime.bigint() - started) / 1e6;
}

const { child, address } = await startMandate(null);
const pid = child.pid as number;
const rows: { phase: string; rssMb: number; checkMs: number; note: string }[] = [];
try {
  await timedCheck(address);
  rows.push({ phase: 'started, one Check decided', rssMb: rssMb(pid), checkMs: await timedCheck(address), note: '' });

  // (1) The attack: 3.9 MB messages, half sent.
  const attack = await Promise.all([session(address), session(address)]);
  const open1: ClientHttp2Stream[] = [];
  const statuses = await Promise.all(Array.from({ length: smoke ? 20 : 200 }, (_, i) => halfSend(attack[i % 2] as ClientHttp2Session, 3_900_000, 64 * 1024, open1)));
  const refused = statuses.filter((s) => s === '8').length;
  rows.push({ phase: `${statuses.length} streams announcing 3.9 MB, 64 KB sent`, rssMb: rssMb(pid), checkMs: await timedCheck(address), note: `${refused} refused RESOURCE_EXHAUSTED at the length prefix` });
  for (const s of attack) s.destroy();

  // (2) The worst under the limits: every stream holds maxMessageBytes - 1 bytes; (3) closed.
  // Several rounds: whether the memory is reused or grows.
  const size = DEFAULTS.maxMessageBytes;
  for (let round = 1; round <= rounds; round++) {
    const held: ClientHttp2Session[] = [];
    const open2: ClientHttp2Stream[] = [];
    for (let c = 0; c < connections; c++) held.push(await session(address));
    for (const s of held) for (let i = 0; i < streams; i++) void halfSend(s, size, size - 1, open2);
    await sleep(smoke ? 500 : 2000);
    rows.push({ phase: `round ${round}: ${connections} connections x ${streams} streams holding ${Math.round(size / 1024) - 1} KiB each`, rssMb: rssMb(pid), checkMs: await timedCheck(address), note: `${Math.round((connections * streams * size) / 1048576)} MiB announced in all` });
    for (const s of held) s.destroy();
    await sleep(smoke ? 500 : 3000);
    rows.push({ phase: `round ${round}: all attack connections closed`, rssMb: rssMb(pid), checkMs: await timedCheck(address), note: '' });
  }
} finally {
  child.kill('SIGTERM');
}

const md = [
  `Half-sent gRPC messages against \`mandate serve\` (example, default limits: maxMessageBytes ${DEFAULTS.maxMessageBytes}, maxConcurrentStreams ${DEFAULTS.maxConcurrentStreams}, maxConnections ${DEFAULTS.maxConnections}); RSS of the Mandate process.`,
  '',
  '| phase | RSS MB | a legitimate Check on a new connection, ms | |',
  '| --- | ---: | ---: | --- |',
  ...rows.map((r) => `| ${r.phase} | ${r.rssMb} | ${r.checkMs.toFixed(1)} | ${r.note} |`),
  '',
].join('\n');
process.stdout.write(md);
if (values.out !== undefined) {
  writeFileSync(values.out, JSON.stringify({ connections, streams, limits: { maxMessageBytes: DEFAULTS.maxMessageBytes, maxConcurrentStreams: DEFAULTS.maxConcurrentStreams }, rows }, null, 2));
  writeFileSync(values.out.replace(/\.json$/, '.md'), md);
}
