// mandate serve: load, listen, reload on change or SIGHUP, drain on SIGTERM.

import { parseArgs } from 'node:util';
import { startServer } from '../server/server.js';
import { startAdmin } from '../server/admin.js';
import { bindAdminPort, bindCheckPort } from '../server/bind.js';
import { createLogger, LOG_LEVELS, type LogLevel } from '../telemetry/log.js';
import { logLevelFromEnv } from '../config/load.js';
import { UsageError } from './usage.js';
import { isIP } from 'node:net';
import { loadRuntimeForCommand } from './runtime.js';
import type { ReloadResult } from '../policy/store.js';
import { DecisionLog } from '../telemetry/decision-log.js';
import { otlpProtocol, otlpTraceExporter, Telemetry } from '../telemetry/telemetry.js';
import { ShadowEvaluator } from '../policy/shadow.js';
import type { Decision } from '../core/decision.js';
import { EVALUATION_PATHS } from '../policy/engine.js';
import type { PoolStats } from '../policy/pool.js';
import { h2ErrorCounts, type H2Stats } from '../server/http2.js';

export async function runServe(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: 'string' }, listen: { type: 'string' }, 'admin-listen': { type: 'string' }, 'log-level': { type: 'string' } }, strict: true });
  const level = values['log-level'] ?? logLevelFromEnv() ?? 'info';
  if (!LOG_LEVELS.includes(level as LogLevel)) throw new UsageError(`--log-level (or MANDATE_LOG_LEVEL) must be one of ${LOG_LEVELS.join(', ')}, not "${level}"`);
  const logger = createLogger(level as LogLevel);
  let lastStoreError = '';
  let storeErrorHook: () => void = () => undefined;
  const runtime = loadRuntimeForCommand(
    values.config ?? null,
    {
      listen: values.listen,
      adminListen: values['admin-listen'],
      mode: 'serve',
      // Redis errors repeat on every reconnect attempt: log each new one once.
      onStoreError: (message) => {
        storeErrorHook();
        if (message !== lastStoreError) logger.error('task state store error', { message });
        lastStoreError = message;
      },
    },
    'mandate: not started',
  );
  if (runtime === null) return 1;
  const { config, store, routes, bundles, identifier, groups, tasks } = runtime;
  // The OTLP exporter asked for, before anything is bound: an unsupported protocol stops here.
  let spanExporter: Awaited<ReturnType<typeof otlpTraceExporter>> = null;
  if (config.telemetry.enabled) {
    try {
      otlpProtocol(process.env);
      spanExporter = await otlpTraceExporter(process.env);
    } catch (err) {
      await tasks?.store.close();
      throw err;
    }
  }
  // Then both ports, before anything is written or SERVING said: a busy one stops here.
  let checkPort: Awaited<ReturnType<typeof bindCheckPort>> | null = null;
  let adminPort: Awaited<ReturnType<typeof bindAdminPort>> | null = null;
  try {
    checkPort = await bindCheckPort(config.listen);
    adminPort = config.adminListen === 'off' ? null : await bindAdminPort(config.adminListen);
    tasks?.keys.ensureSigningKey();
  } catch (err) {
    checkPort?.close();
    adminPort?.close();
    await tasks?.store.close();
    throw err;
  }
  const shadow = runtime.shadow === null ? null : new ShadowEvaluator(runtime.shadow);
  if (runtime.workloadApi !== null) runtime.workloadApi.onError = (what, message) => logger.warn('SPIFFE Workload API', { stream: what, message });
  bundles.events.onReload = (trustDomain, keys) => logger.info('trust bundle loaded', { trustDomain, jwtKeys: keys });
  bundles.events.onError = (trustDomain, message) => logger.error('trust bundle not updated; the previous keys stay in use', { trustDomain, message });
  await bundles.start();
  const decisionLog = config.decisionLog.sink === 'off' ? null : DecisionLog.open({ ...config.decisionLog, dryRun: config.dryRun, includeInput: config.decisionLog.input, onError: (message) => logger.error(message) });
  if (config.dryRun) logger.warn('DRY RUN: every request is answered allowed whatever policy decides; decisions are logged with "dryRun": true (config dryRun)', { policies: config.policies });
  // Evaluations by path: this thread's (compiled and cedar-wasm) and the pool's (set once it runs).
  let poolStats: () => PoolStats | null = () => null;
  const evaluationCounts = (): { compiled: number; wasmInline: number; wasmPool: number } => ({ compiled: EVALUATION_PATHS.compiled, wasmInline: EVALUATION_PATHS.wasmInline, wasmPool: poolStats()?.pooled ?? 0 });
  const telemetry = !config.telemetry.enabled
    ? null
    : new Telemetry({
        jwtCache: () => identifier.jwt?.stats ?? null,
        xfccIgnored: () => identifier.stats.xfccIgnored,
        certificateCacheHits: () => identifier.certificates.hits,
        decisionLog: () => decisionLog?.stats ?? null,
        taskStoreHealthy: () => tasks?.store.healthy() ?? null,
        shadow: () => (shadow === null ? null : { evaluated: shadow.evaluated, disagreements: shadow.disagreements }),
        evaluations: () => evaluationCounts(),
        dryRun: () => config.dryRun,
        http2Errors: () => {
          const stats = serverHttp2Errors();
          return stats === null ? [] : h2ErrorCounts(stats);
        },
        tls: () => {
          const t = serverTls();
          return t === null ? null : { notAfterSeconds: Date.parse(t.notAfter) / 1000, refusedClients: t.refusedClients, failedHandshakes: t.failedHandshakes };
        },
      }, { spanExporter });
  storeErrorHook = () => telemetry?.recordStoreError();
  let serverTls: () => ReturnType<Awaited<ReturnType<typeof startServer>>['tls']> = () => null;
  let serverHttp2Errors: () => H2Stats | null = () => null;
  let server: Awaited<ReturnType<typeof startServer>>;
  try {
    server = await startServer({
      config,
      store,
      routes,
      identifier,
      groups,
      tasks,
      telemetry,
      shadow,
      onShadowDisagreement: (d) => decisionLog?.recordLine(d),
      logger,
      listener: checkPort as NonNullable<typeof checkPort>,
      workloadApi: runtime.workloadApi,
      ...(decisionLog === null ? {} : { onDecision: (decision: Decision, latencyUs: number) => decisionLog.record(decision, latencyUs) }),
    });
  } catch (err) {
    // Nothing was said SERVING: let go of what is open so the process ends with the message.
    checkPort?.close();
    adminPort?.close();
    bundles.stop();
    runtime.workloadApi?.close();
    await tasks?.store.close();
    await decisionLog?.close();
    await telemetry?.shutdown();
    throw err;
  }
  poolStats = () => server.poolStats();
  serverTls = () => server.tls();
  serverHttp2Errors = () => server.http2Errors();
  const admin = adminPort === null ? null : await startAdmin(config.adminListen, {
    server: adminPort,
    health: server.health,
    keys: tasks?.keys ?? null,
    store: tasks?.store ?? null,
    telemetry,
    status: () => ({
      policyVersion: store.current.version.version,
      policiesLoadedAt: store.current.version.loadedAt.toISOString(),
      policies: store.current.version.policies.length,
      evaluation: config.evaluation.mode,
      workers: config.evaluation.mode === 'inline' ? 0 : config.evaluation.workers,
      pool: server.poolStats(),
      dryRun: config.dryRun,
      compiledPolicies: store.current.compiledPolicies,
      evaluations: evaluationCounts(),
      taskStore: tasks === null ? 'none' : tasks.store.healthy() ? `${tasks.store.kind}: ok` : `${tasks.store.kind}: unavailable`,
      tracing: telemetry?.tracing ?? false,
      tls: server.tls(),
    }),
  });
  const host = server.address.slice(0, server.address.lastIndexOf(':')).replace(/^\[(.*)\]$/, '$1');
  if (config.tls === null && !isLoopback(host)) {
    logger.warn('serving ext_authz in plaintext on a non-loopback address: anyone who reaches it can ask for decisions; serve TLS (tls.workloadApi, or tls.clientCa) with tls.checkClients (envoy/README.md)', { address: server.address });
  }
  logger.info('listening', {
    address: server.address,
    admin: admin?.address ?? null,
    tasks: tasks === null ? null : { store: tasks.store.kind, keyFile: tasks.config.keyFile },
    policyVersion: store.current.version.version,
    policies: store.current.version.policies.length,
    shadowPolicyVersion: shadow?.version ?? null,
    config: config.configFile,
  });

  const reportShadow = (result: ReloadResult): void => {
    if (!result.ok) logger.error('shadow policy reload rejected; the previous shadow version stays', { problems: result.problems });
    else if (result.changed) logger.info('shadow policies reloaded', { policyVersion: result.version });
  };
  const report = (trigger: string) => (result: ReloadResult) => {
    if (!result.ok) {
      telemetry?.recordReload('rejected');
      logger.error('policy reload rejected; the previous version keeps deciding', { trigger, problems: result.problems });
    } else if (result.changed) {
      telemetry?.recordReload('ok');
      logger.info('policies reloaded', { trigger, policyVersion: result.version });
    } else {
      telemetry?.recordReload('unchanged');
    }
  };
  const stopWatching = config.watch ? store.watch(report('watch')) : () => undefined;
  const stopShadowWatch = config.watch && runtime.shadow !== null ? runtime.shadow.watch(reportShadow) : () => undefined;
  process.on('SIGHUP', () => {
    void store.reload().then(report('SIGHUP'));
    if (runtime.shadow !== null) void runtime.shadow.reload().then(reportShadow);
    bundles.reloadFiles();
    server.reloadTls();
    try {
      tasks?.keys.reload();
    } catch (err) {
      logger.error('task key file not reloaded; the current keys stay in use', { message: (err as Error).message });
    }
  });

  return new Promise<number>((resolveExit) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info('draining', { signal, graceMs: config.shutdownGraceMs });
      stopWatching();
      stopShadowWatch();
      bundles.stop();
      server
        .shutdown(config.shutdownGraceMs)
        .then(async (how) => {
          await admin?.close();
          await tasks?.store.close();
          await decisionLog?.close();
          await telemetry?.shutdown();
          runtime.workloadApi?.close();
          logger.info('stopped', { how, ...(decisionLog === null ? {} : { decisionLog: decisionLog.stats }) });
        })
        .finally(() => resolveExit(0));
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}

function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}
